"""A short digest of a source tree on the control node: the content part of a release name.

``lookup('fleet_source_digest', app_source_dir)`` hashes every file of the tree (its path
relative to the tree, whether it is executable, its bytes; a symlink's target) in path order,
so the same content gives the same digest wherever the tree lives, and any change to a file
that can go into the wheel (code, migrations, pyproject.toml, README, constraints) gives a new
one. What builds and tools leave behind is not part of the content: ``__pycache__``, ``*.pyc``,
``*.egg-info``, tool caches, virtualenvs, VCS directories, editor backups, and ``build/`` and
``dist/`` at the top of the tree.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

DOCUMENTATION = """
name: fleet_source_digest
short_description: A short, deterministic digest of a source tree's content (control node)
description:
  - Hashes the relative path, executable bit and bytes of every file under each directory, in path order
    (symlinks by their target, not followed).
  - Ignores __pycache__, *.pyc, *.pyo, *.egg-info, .pytest_cache, .mypy_cache, .ruff_cache, .tox, .nox,
    .venv, venv, .git, .hg, .svn, .eggs, .coverage, *.swp, *~, .DS_Store, and build/ and dist/ at the top.
options:
  _terms:
    description: Directories on the control node (relative ones from the playbook's directory).
    required: true
  length:
    description: Hex digits of the SHA-256 digest to return.
    type: int
    default: 12
"""

EXAMPLES = """
app_release: "{{ app_version }}-{{ lookup('fleet_source_digest', app_source_dir) }}"
"""

RETURN = """
_raw:
  description: One hex digest per directory.
  type: list
  elements: str
"""

# Names ignored anywhere in the tree (directories are not descended into).
IGNORED = (
    "__pycache__",
    "*.pyc",
    "*.pyo",
    "*.egg-info",
    ".eggs",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".tox",
    ".nox",
    ".venv",
    "venv",
    ".git",
    ".hg",
    ".svn",
    ".coverage",
    "*.swp",
    "*~",
    ".DS_Store",
)
# Names ignored at the top of the tree only (a package may have a `build` module of its own).
IGNORED_AT_TOP = ("build", "dist")
_CHUNK = 1 << 20


def _ignored(name: str, top: bool) -> bool:
    patterns = IGNORED + IGNORED_AT_TOP if top else IGNORED
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _file_digest(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.digest()


def source_files(root: Path) -> list[str]:
    """Every file of the tree that counts, as sorted POSIX paths relative to root."""
    found: list[str] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        top = Path(directory) == root
        dirs[:] = [d for d in dirs if not _ignored(d, top)]
        relative = Path(directory).relative_to(root)
        found += [(relative / f).as_posix() for f in files if not _ignored(f, top)]
        # A symlink to a directory is listed in dirs and not followed: it counts by its target.
        found += [(relative / d).as_posix() for d in dirs if (Path(directory) / d).is_symlink()]
    return sorted(found)


def source_digest(root: Path | str, length: int = 12) -> str:
    """The first ``length`` hex digits of the tree's SHA-256 content digest."""
    root = Path(root)
    if not root.is_dir():
        raise AnsibleLookupError(f"fleet_source_digest: {root} is not a directory")
    if not 1 <= length <= 64:
        raise AnsibleLookupError(f"fleet_source_digest: length {length} is not between 1 and 64")
    names = source_files(root)
    if not names:
        raise AnsibleLookupError(f"fleet_source_digest: {root} has no source files")
    digest = hashlib.sha256()
    for name in names:
        path = root / name
        info = path.lstat()
        digest.update(os.fsencode(name) + b"\0")
        if stat.S_ISLNK(info.st_mode):
            digest.update(b"link\0" + os.fsencode(path.readlink()) + b"\0")
        else:
            executable = b"x" if info.st_mode & stat.S_IXUSR else b"-"
            digest.update(b"file\0" + executable + _file_digest(str(path)))
    return digest.hexdigest()[:length]


class LookupModule(LookupBase):
    """``lookup('fleet_source_digest', DIR, length=12)``."""

    def run(self, terms: list[Any], variables: dict[str, Any] | None = None, **kwargs: Any) -> list[str]:  # noqa: ANN401
        self.set_options(var_options=variables, direct=kwargs)
        length = self.get_option("length")
        basedir = self.get_basedir(variables or {})
        return [source_digest(Path(basedir, str(term)), length) for term in terms]
