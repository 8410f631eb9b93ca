"""README.md opens with the two commands, and CI runs exactly the test one."""

import re

from fleet.docs.cli import REPO


def _first_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
    assert block, "README.md must open with a code block"
    assert text.index("```") < text.index("\n## "), "the commands come before any section"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.split("#")[0].strip()]


def test_readme_opens_with_two_commands():
    assert _first_commands() == ["./scripts/deploy-lab.sh", "./scripts/test.sh"]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert f"exec {_first_commands()[1]}" in ci
    for script in _first_commands():
        assert (REPO / script).stat().st_mode & 0o111, f"{script} must be executable"
