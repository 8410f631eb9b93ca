"""Clients of the tiers that run where the real clients live: on the hosts themselves.

sshd forwards no TCP (docs/security.md), and the firewall admits PostgreSQL, Redis and the
app port from the fleet's hosts only, so the verifiers act as clients *on* a host: curl for
the app, the app release's own Python (redis-py, psycopg) for Redis and PostgreSQL, over TLS
with the fleet's CA exactly as the app connects, addressed by the server's fleet address
(which its certificate covers).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import redis

APP_PYTHON = "/opt/fastapi-fleet/current/venv/bin/python"
CA_FILE = "/etc/ssl/fastapi-fleet/ca.crt"
REDIS_SOCKET = "/run/redis/redis-server.sock"

# Runs on the host with the release's Python: one call on a redis-py client, the result as JSON.
_REDIS_CALL = r"""
import json, os, redis
spec = json.loads(os.environ["FLEET_CALL"])
try:
    client = redis.Redis(**spec["connection"], socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
    result = getattr(client, spec["method"])(*spec["args"], **spec["kwargs"])
    print(json.dumps({"result": result}, default=str))
except (redis.exceptions.RedisError, OSError) as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""

# Runs on the host with the release's Python: one query over psycopg, the first column of each row.
_PG_QUERY = r"""
import json, os, psycopg
spec = json.loads(os.environ["FLEET_CALL"])
try:
    with psycopg.connect(spec["dsn"], connect_timeout=5) as conn:
        rows = conn.execute(spec["query"]).fetchall()
    print(json.dumps({"result": [row[0] for row in rows]}, default=str))
except psycopg.Error as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
"""


def host_python(host, script: str, call: dict[str, Any]) -> dict[str, Any]:
    """Run a script with the app release's Python on the host, the call's JSON in its environment."""
    command = f"FLEET_CALL={shlex.quote(json.dumps(call))} {APP_PYTHON} -c {shlex.quote(script)}"
    result = host.run(command)
    if result.rc != 0:
        raise RuntimeError(f"{host.backend.hostname}: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class RemoteRedis:
    """A redis-py client whose calls run on a client host; its errors are raised here as redis-py's."""

    def __init__(self, client_host, **connection: Any) -> None:
        self.client_host = client_host
        self.connection = connection

    def __getattr__(self, method: str):
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            answer = host_python(
                self.client_host,
                _REDIS_CALL,
                {"connection": self.connection, "method": method, "args": list(args), "kwargs": kwargs},
            )
            if "error" in answer:
                error = getattr(redis.exceptions, answer["error"], None)
                if not (isinstance(error, type) and issubclass(error, Exception)):
                    error = ConnectionError if answer["error"] in ("ConnectionError", "OSError") else OSError
                raise error(answer["message"])
            return answer["result"]

        return call

    def close(self) -> None:
        """Nothing stays open: each call is its own connection."""


def redis_tls(client_host, server_address: str, port: int, username: str | None, password: str | None, **extra: Any):
    """A client on client_host speaking TLS to Redis at its fleet address, verifying it with the fleet's CA."""
    options = {"ssl": True, "ssl_ca_certs": CA_FILE, "ssl_cert_reqs": "required", **extra}
    return RemoteRedis(client_host, host=server_address, port=port, username=username, password=password, **options)


def redis_local(server_host, username: str | None, password: str | None) -> RemoteRedis:
    """A client on the Redis host itself, over the unix socket local clients (e.g. an exporter) use."""
    return RemoteRedis(server_host, unix_socket_path=REDIS_SOCKET, username=username, password=password)


def pg_query(client_host, dsn: str, query: str) -> dict[str, Any]:
    """{'result': [...]} or {'error': class, 'message': text} of one query run on client_host."""
    return host_python(client_host, _PG_QUERY, {"dsn": dsn, "query": query})


def curl(host, url: str, *options: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body) of one request made with curl on the host; OSError when nothing answered."""
    quoted = " ".join(shlex.quote(o) for o in options)
    result = host.run(f"curl -sS -k --max-time {timeout} -o - -w '\\n%{{http_code}}' {quoted} {shlex.quote(url)}")
    if result.rc != 0:
        raise OSError(f"{host.backend.hostname}: curl {url}: {result.stderr.strip()}")
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body
