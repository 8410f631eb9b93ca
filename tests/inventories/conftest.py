"""The example production inventory rendered once by Ansible (tests/inventories/render.yml)."""

import subprocess
import sys
from pathlib import Path

import pytest

from fleet.docs.cli import REPO

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Path:
    """DIR/<host>/<file>: each production host's templates, with the roles' defaults and the inventory's values."""
    out = tmp_path_factory.mktemp("render")
    vault_pass = out / "vault-pass"
    vault_pass.write_text("fastapi-fleet-example")
    proc = subprocess.run(
        [
            BIN / "ansible-playbook",
            "tests/inventories/render.yml",
            "-i",
            "inventories/production",
            "--vault-password-file",
            str(vault_pass),
            "-c",
            "local",
            "-e",
            f"render_dir={out} ansible_become=false ansible_python_interpreter={sys.executable}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        env={"ANSIBLE_FORCE_COLOR": "0", "PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(out)},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out
