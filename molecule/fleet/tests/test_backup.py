"""pgBackRest on db1: a backup, more writes, a noted time, the table dropped, and a
point-in-time restore into a scratch cluster (playbooks/restore.yml, drill mode) that gives
back exactly the rows written before that time (row count and md5 of the rows).
"""

import json
import shlex
import time

import pytest
from deploys import run_playbook

testinfra_hosts = ["lb1"]

TABLE = "drill_sentinel"
# The same expression as roles/postgresql/files/table_checksums.sql.
CHECKSUM = (
    f"SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, chr(10) ORDER BY r::text), '')) FROM public.{TABLE} r"
)


def _sql(db1, statement: str) -> str:
    command = f"runuser -u postgres -- psql -d fleet -v ON_ERROR_STOP=1 -tAc {shlex.quote(statement)}"
    return db1.check_output(command).strip()


def _insert(db1, first: int, last: int, phase: str) -> None:
    _sql(
        db1,
        f"INSERT INTO {TABLE} SELECT i, '{phase}', md5(i::text) FROM generate_series({first}, {last}) AS i",
    )


def _info(db1) -> dict:
    out = db1.check_output("runuser -u postgres -- pgbackrest --stanza=fleet --output=json info")
    return json.loads(out)[0]


@pytest.fixture(scope="module")
def db1(fleet):
    return fleet["db1"]


def test_point_in_time_restore_into_a_scratch_cluster_gives_back_what_was_written_before(db1, inventory_file):
    _sql(db1, f"DROP TABLE IF EXISTS {TABLE}")
    _sql(db1, f"CREATE TABLE {TABLE} (id int PRIMARY KEY, phase text NOT NULL, payload text NOT NULL)")
    _insert(db1, 1, 1000, "before-backup")

    started = time.monotonic()
    db1.run_expect([0], "systemctl start fastapi-fleet-pgbackrest@diff.service")
    backup_seconds = time.monotonic() - started
    latest = _info(db1)["backup"][-1]
    assert latest["type"] == "diff"

    _insert(db1, 1001, 1500, "after-backup")
    expected = _sql(db1, CHECKSUM)
    target = _sql(db1, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
    time.sleep(1.5)
    _insert(db1, 1501, 1700, "after-target")
    _sql(db1, f"DROP TABLE {TABLE}")
    # Archive the WAL that holds all of it (check switches the segment and waits for the archive).
    db1.run_expect([0], "runuser -u postgres -- pgbackrest --stanza=fleet check")

    play = run_playbook(inventory_file, "restore.yml", {"postgresql_restore_target_time": target})
    assert play.returncode == 0, play.tail()

    report = json.loads(db1.check_output("cat /var/lib/postgresql/restore-drill.json"))
    name = f"public.{TABLE}"
    rows, md5 = expected.split()
    print(
        f"\nbackup: {latest['type']} {latest['label']}, database {latest['info']['size'] / 1e6:.1f} MB, "
        f"repository +{latest['info']['repository']['delta'] / 1e6:.2f} MB, {backup_seconds:.1f} s; "
        f"restore to {target}: playbook {play.seconds:.1f} s (pgBackRest restore {report['restore_seconds']}); "
        f"rows restored {report['restored'].get(name)} of {rows} expected"
    )
    assert report["restored"][name] == int(rows)
    assert report["restored_md5"][name] == md5
    assert name not in report["live"], "the table was dropped on the live cluster"
    # The app's own table came back too, and the scratch cluster is gone again.
    assert "public.items" in report["restored"]
    assert db1.run("test -e /etc/postgresql/*/drill").rc != 0
