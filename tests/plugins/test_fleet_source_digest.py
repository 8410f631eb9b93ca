"""The content part of a release name: same tree, same digest; any change that can reach the wheel, a new one."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleLookupError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "fleet_source_digest", ROOT / "plugins" / "lookup" / "fleet_source_digest.py"
)
assert _spec is not None and _spec.loader is not None
fleet_source_digest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_source_digest)
digest = fleet_source_digest.source_digest


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "app"
    (root / "src" / "pkg" / "migrations").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "pkg"\nversion = "1.0"\n')
    (root / "README.md").write_text("# pkg\n")
    (root / "constraints.txt").write_text("fastapi==1.0\n")
    (root / "src" / "pkg" / "__init__.py").write_text("")
    (root / "src" / "pkg" / "main.py").write_text("print('hello')\n")
    (root / "src" / "pkg" / "migrations" / "0001.py").write_text("revision = '0001'\n")
    return root


def test_same_tree_same_digest_wherever_it_lives(tree, tmp_path):
    first = digest(tree)
    assert first == digest(tree)
    assert len(first) == 12
    assert all(c in "0123456789abcdef" for c in first)
    copy = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(tree, copy)
    assert digest(copy) == first


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "src" / "pkg" / "main.py").write_text("print('hello, world')\n"),
        lambda root: (root / "src" / "pkg" / "main.py").write_text("print('hello')\n\n"),
        lambda root: (root / "src" / "pkg" / "migrations" / "0002.py").write_text("revision = '0002'\n"),
        lambda root: (root / "src" / "pkg" / "__init__.py").unlink(),
        lambda root: (root / "src" / "pkg" / "main.py").rename(root / "src" / "pkg" / "app.py"),
        lambda root: (root / "constraints.txt").write_text("fastapi==1.1\n"),
        lambda root: (root / "README.md").write_text("# pkg, described\n"),
        lambda root: (root / "src" / "pkg" / "main.py").chmod(0o755),
        lambda root: (root / "src" / "pkg" / "link.py").symlink_to("main.py"),
        # A package may have a `build` or `dist` module of its own: only the top-level ones are output.
        lambda root: (
            (root / "src" / "pkg" / "build").mkdir() or (root / "src" / "pkg" / "build" / "x.py").write_text("")
        ),
    ],
    ids=[
        "edit",
        "newline",
        "new-file",
        "removed-file",
        "renamed-file",
        "pins",
        "readme",
        "exec-bit",
        "symlink",
        "build-module",
    ],
)
def test_any_change_to_the_source_is_a_new_digest(tree, change):
    before = digest(tree)
    change(tree)
    assert digest(tree) != before


def test_build_output_caches_and_tool_files_are_not_content(tree):
    before = digest(tree)
    for junk in [
        "src/pkg/__pycache__/main.cpython-311.pyc",
        "src/pkg/stale.pyc",
        "build/lib/pkg/main.py",
        "dist/pkg-1.0-py3-none-any.whl",
        "src/pkg.egg-info/PKG-INFO",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/CACHEDIR.TAG",
        ".mypy_cache/3.11/x.json",
        ".venv/bin/python",
        ".git/HEAD",
        "src/pkg/.main.py.swp",
        "src/pkg/main.py~",
        ".coverage",
    ]:
        path = tree / junk
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("anything")
    os.utime(tree / "src" / "pkg" / "main.py", (1, 1))
    assert digest(tree) == before


def test_length_and_errors(tree, tmp_path):
    assert digest(tree, 64).startswith(digest(tree))
    with pytest.raises(AnsibleLookupError, match="is not a directory"):
        digest(tmp_path / "absent")
    (tmp_path / "empty" / "__pycache__").mkdir(parents=True)
    with pytest.raises(AnsibleLookupError, match="has no source files"):
        digest(tmp_path / "empty")
    with pytest.raises(AnsibleLookupError, match="length 0"):
        digest(tree, 0)


def test_the_lookup_through_ansible(tree):
    """The lookup as the role calls it: found through ansible.cfg's lookup_plugins."""
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            bin_dir / "ansible",
            "localhost",
            "-c",
            "local",
            "-m",
            "ansible.builtin.debug",
            "-a",
            f"msg={{{{ ['1.0', lookup('fleet_source_digest', '{tree}')] | join('-') }}}}",
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    task = json.loads(result.stdout)["plays"][0]["tasks"][0]
    assert task["hosts"]["localhost"]["msg"] == f"1.0-{digest(tree)}"


def test_the_default_release_name_has_the_release_form():
    spec = importlib.util.spec_from_file_location("fleet_checks", ROOT / "plugins" / "filter" / "fleet_checks.py")
    assert spec is not None and spec.loader is not None
    fleet_checks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fleet_checks)
    for version in ["0.2.0", "2024.6.1.post3+local.build.42"]:
        assert fleet_checks.invalid(f"{version}-{digest(ROOT / 'app')}", "release") == []
