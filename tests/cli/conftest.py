"""Helpers for the `fleet` CLI tests: inventories written to tmp (the CLI runner is fleet_cli.py)."""

from pathlib import Path

import pytest
import yaml

VAULT_PASSWORD = "fastapi-fleet-example"


@pytest.fixture
def vault_file(tmp_path) -> Path:
    path = tmp_path / "vault-pass"
    path.write_text(VAULT_PASSWORD + "\n")
    return path


@pytest.fixture
def write_inventory(tmp_path):
    """Write a YAML inventory {group: {host: vars}} and return its path."""

    def write(groups: dict[str, dict[str, dict]], name: str = "hosts.yml") -> Path:
        children = {group: {"hosts": hosts} for group, hosts in groups.items()}
        path = tmp_path / name
        path.write_text(yaml.safe_dump({"all": {"children": children}}))
        return path

    return write
