"""Every role variable is decided on by its role's preflight: a form, a choice list, or a cross-check."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parents[1] for p in ROOT.glob("roles/*/tasks/preflight.yml"))
# Variables no preflight needs to look at, and why.
UNCHECKED = {
    "app_wheelhouse_dir": "a cache directory on the control node that the role creates",
}


def _forms(role: Path) -> dict:
    forms: dict = {}
    for task in yaml.safe_load((role / "tasks" / "preflight.yml").read_text()):
        forms |= (task.get("vars") or {}).get(f"{role.name}_preflight_forms") or {}
    return forms


def test_every_role_has_a_preflight():
    assert {r.name for r in ROLES} == {p.name for p in (ROOT / "roles").iterdir() if (p / "meta").is_dir()}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_every_variable_is_checked(role):
    options = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    forms = _forms(role)
    preflight = (role / "tasks" / "preflight.yml").read_text()
    unchecked = [
        name
        for name, option in options.items()
        if name not in forms
        and "choices" not in option
        and not re.search(rf"\b{name}\b", preflight)  # a cross-check
        and name not in UNCHECKED
    ]
    assert unchecked == [], f"give these a form in {role.name}_preflight_forms, choices, or a cross-check"


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_main_runs_the_preflight_first(role):
    # main.yml's first task imports preflight.yml, directly or through the files it imports first.
    first = "main.yml"
    seen = []
    while first != "preflight.yml" and first not in seen:
        seen.append(first)
        first = yaml.safe_load((role / "tasks" / first).read_text())[0].get("ansible.builtin.import_tasks")
        assert first, f"{' -> '.join(seen)} does not start by importing a tasks file"
    assert first == "preflight.yml", " -> ".join(seen)
