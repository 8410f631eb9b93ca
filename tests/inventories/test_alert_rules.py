"""The fleet's alert rules, rendered by Ansible with the monitoring role's defaults, pass
`promtool check rules` and their unit tests (alerts.test.yml): every alert fires on
synthetic series that should fire it and stays quiet on series that should not.

The rules are rendered for the example production inventory's monitoring host by
tests/inventories/render.yml (the same rendering test_production_render.py checks).
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

UNIT_TESTS = Path(__file__).resolve().parents[1] / "monitoring" / "alerts.test.yml"
MONITORING_HOST = "mon1.example.internal"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: run scripts/setup.sh")


@pytest.fixture(scope="module")
def rules_file(rendered) -> Path:
    return rendered / MONITORING_HOST / "fastapi-fleet.rules.yml"


@pytest.fixture(scope="module")
def rules(rules_file) -> dict[str, dict]:
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_promtool_accepts_the_rules(rules_file):
    proc = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_summary_a_runbook_and_a_severity(rules):
    for name, rule in rules.items():
        assert rule["annotations"].get("summary"), name
        assert rule["annotations"].get("runbook"), name
        assert rule["labels"].get("severity") in ("warning", "critical"), name


def test_every_alert_has_a_firing_and_a_quiet_unit_test(rules):
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    fires = {case["alertname"] for case in cases if case.get("exp_alerts")}
    quiet = {case["alertname"] for case in cases if not case.get("exp_alerts")}
    assert set(rules) - fires == set(), "alerts without a test that fires them"
    assert set(rules) - quiet == set(), "alerts without a test where they stay quiet"
    assert (fires | quiet) - set(rules) == set(), "tests of alerts that do not exist"


def test_promtool_unit_tests_pass(rules, rules_file, tmp_path):
    # The runbook line is static text: taken from the rules so the tests name only the summary.
    suite = yaml.safe_load(UNIT_TESTS.read_text())
    for test in suite["tests"]:
        for case in test["alert_rule_test"]:
            for alert in case.get("exp_alerts") or []:
                annotations = alert.setdefault("exp_annotations", {})
                annotations.setdefault("runbook", rules[case["alertname"]]["annotations"]["runbook"])
    shutil.copy(rules_file, tmp_path / "fastapi-fleet.rules.yml")
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(suite, sort_keys=False))
    proc = subprocess.run(
        ["promtool", "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
