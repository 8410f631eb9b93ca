"""The production app wheel carries the app only: test helpers (throwaway servers) stay out of it."""

import subprocess
import sys
import zipfile

from fleet.docs.cli import REPO


def test_wheel_has_no_test_code(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(tmp_path), str(REPO / "app")],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fastapi_fleet_app-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "fastapi_fleet_app/main.py" in names
    assert "fastapi_fleet_app/gunicorn_conf.py" in names
    assert not [n for n in names if "throwaway" in n or "/tests/" in n or n.startswith("tests/")]
