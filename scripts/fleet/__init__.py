"""Control-node tooling for fastapi-fleet: the lab, the operations CLI and benchmarks."""
