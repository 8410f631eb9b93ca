"""docs/roles/*.md list every role variable and match meta/argument_specs.yml and defaults."""

from pathlib import Path

import pytest

from fleet.docs.cli import REPO, role_dirs, stale_pages
from fleet.docs.roles import load_role, problems, render

ROLES = role_dirs(REPO)


def test_every_role_is_documented():
    assert {d.name for d in ROLES} >= {"common"}
    assert [p for d in ROLES for p in problems(d)] == []


def test_pages_are_current():
    assert stale_pages(REPO) == [], "run `fleet docs` and commit docs/roles/"


@pytest.mark.parametrize("role", ROLES, ids=lambda d: d.name)
def test_page_names_every_variable(role):
    page = (REPO / "docs" / "roles" / f"{role.name}.md").read_text()
    for var in load_role(role).variables:
        assert f"| `{var.name}` |" in page


def _role(tmp_path: Path, defaults: str, specs: str) -> Path:
    (tmp_path / "r" / "defaults").mkdir(parents=True)
    (tmp_path / "r" / "meta").mkdir()
    (tmp_path / "r" / "defaults" / "main.yml").write_text(defaults)
    (tmp_path / "r" / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    short_description: A role\n    options:\n" + specs
    )
    return tmp_path / "r"


def test_problems_are_found(tmp_path):
    role = _role(
        tmp_path,
        "---\n# Documented.\nr_ok: 1\nr_no_comment: 2\n# Not in specs.\nr_unspecced: 3\n",
        "      r_ok: {type: int, description: Fine.}\n"
        "      r_no_comment: {type: int, description: Has no comment.}\n"
        "      r_undescribed: {type: str, required: true}\n"
        "      r_orphan: {type: str, description: Neither default nor required.}\n",
    )
    assert problems(role) == [
        "r: r_no_comment has no one-line comment above it in defaults/main.yml",
        "r: r_unspecced is in defaults but not in meta/argument_specs.yml",
        "r: r_undescribed has no description in meta/argument_specs.yml",
        "r: r_orphan is neither in defaults nor required",
    ]


def test_render_marks_required_and_secret(tmp_path):
    role = _role(
        tmp_path,
        "---\n# Port.\nr_port: 80\n",
        "      r_port: {type: int, description: The port.}\n"
        "      r_password: {type: str, required: true, no_log: true, description: The password.}\n",
    )
    text = render(load_role(role))
    assert "| `r_port` | int | `80` | The port. |" in text
    assert "| `r_password` | str | **required** | The password. (secret: never logged) |" in text
