"""Control-node tooling for fastapi-fleet, behind one command line: `fleet` (see fleet.cli)."""
