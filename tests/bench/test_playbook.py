"""ansible-playbook runs of the benchmarks: the command line and the recap read back."""

from __future__ import annotations

import sys

from fleet.bench.playbook import SITE, HostRecap, command_line, parse_recap, run_playbook

OUTPUT = """\
PLAY [Load balancers] **********************************************************

TASK [nginx : Enable and start nginx] ******************************************
ok: [bench-lb1]

PLAY RECAP *********************************************************************
bench-app1                 : ok=81   changed=0    unreachable=0    failed=0    skipped=45   rescued=0    ignored=0
bench-db1                  : ok=96   changed=2    unreachable=0    failed=0    skipped=26   rescued=0    ignored=0
bench-lb1                  : ok=5    changed=0    unreachable=1    failed=1    skipped=0    rescued=0    ignored=0

Wednesday 02 December 2026  15:52:16 +0000 (0:00:01.897)       0:07:55.265 ****
"""


def test_parse_recap():
    recap = parse_recap(OUTPUT)
    assert list(recap) == ["bench-app1", "bench-db1", "bench-lb1"]
    assert recap["bench-db1"] == HostRecap(ok=96, changed=2, skipped=26)
    assert recap["bench-lb1"].failed == 1 and recap["bench-lb1"].unreachable == 1


def test_parse_recap_takes_the_last_recap_and_tolerates_none():
    assert parse_recap("no recap here") == {}
    earlier = "PLAY RECAP ***\nold-host : ok=1 changed=1 unreachable=0 failed=0\n\n"
    assert list(parse_recap(earlier + OUTPUT)) == ["bench-app1", "bench-db1", "bench-lb1"]


def test_command_line():
    assert command_line("inv") == ["ansible-playbook", "-i", "inv", str(SITE)]
    assert command_line(None, extra_vars=["@naive.yml", {"app_workers": 1}], vault_password_file="pw") == [
        "ansible-playbook", str(SITE), "-e", "@naive.yml", "-e", '{"app_workers": 1}', "--vault-password-file", "pw",
    ]  # fmt: skip


def test_run_playbook_times_and_logs(tmp_path):
    script = "print('PLAY RECAP ***'); print('h1 : ok=3 changed=1 unreachable=0 failed=0'); raise SystemExit(2)"
    run = run_playbook([sys.executable, "-c", script], tmp_path / "logs" / "run.log", env={"X": "1"})
    assert run.returncode == 2 and not run.ok
    assert run.changed == 1
    assert run.seconds > 0
    assert "PLAY RECAP" in (tmp_path / "logs" / "run.log").read_text()
