"""Throwaway PostgreSQL, Redis and Gunicorn processes on loopback, for tests and benchmarks.

Test and benchmark code: it lives with `fleet bench`, not in the app wheel that ships to servers.

Uses Debian's ``postgresql`` and ``redis-server`` binaries; every server gets a fresh
directory and a random free port. PostgreSQL refuses to run as root, so under root it
runs as the ``postgres`` (or ``nobody``) user through ``setpriv``.
"""

from __future__ import annotations

import http.client
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import redis

LOOPBACK = "127.0.0.1"
GUNICORN_CONFIG = "python:fastapi_fleet_app.gunicorn_conf"
ASGI_APP = "fastapi_fleet_app.main:app"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(check: Callable[[], object], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (OSError, psycopg.Error, redis.RedisError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.05)


def postgres_bindir() -> Path:
    """Directory with initdb/pg_ctl: ``$PG_BINDIR``, else the newest Debian install."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if candidates:
        newest = max(candidates, key=lambda p: int(p.parent.parent.name.split(".")[0]))
        return newest.parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (apt install postgresql)")
    return Path(initdb).parent


class _Directory:
    """A fresh temporary directory, owned by the user the servers run as.

    ``runas`` prefixes a command to drop root; setpriv execs in place, so the child's
    pid is the server's own and signals reach it.
    """

    def __init__(self, prefix: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
        self.runas: list[str] = []
        if os.geteuid() == 0:
            user = _unprivileged_user()
            os.chown(self.path, user.pw_uid, user.pw_gid)
            self.runas = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", "--"]

    def chown(self, path: Path) -> None:
        if self.runas:
            owner = self.path.stat()
            os.chown(path, owner.st_uid, owner.st_gid)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise LookupError("no unprivileged user (postgres or nobody) to run PostgreSQL")


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory; ``url`` points at its database."""

    def __init__(self, user: str = "fleet", database: str = "fleet") -> None:
        self.user = user
        self.database = database
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self._dir = _Directory("fleet-pg-")
        self._bindir = postgres_bindir()
        self.data = self._dir.path / "data"
        self.log = self._dir.path / "postgresql.log"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        command = [*self._dir.runas, str(self._bindir / args[0]), *args[1:]]
        subprocess.run(command, check=True, capture_output=True, cwd=self._dir.path)

    def create(self) -> None:
        """initdb, start, and create the database."""
        pwfile = self._dir.path / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._dir.chown(pwfile)
        self._run(
            "initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--no-sync", "--encoding=UTF8", "--locale=C",
        )  # fmt: skip
        self.start()
        with psycopg.connect(self.url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self._dir.path} -c listen_addresses={LOOPBACK}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def __enter__(self) -> Self:
        try:
            self.create()
        except BaseException:
            self._dir.remove()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop()
        finally:
            self._dir.remove()


class RedisServer:
    """A redis-server without persistence; ``url`` includes its password."""

    def __init__(self) -> None:
        self.password = secrets.token_urlsafe(16)
        self.port = free_port()
        self._dir = _Directory("fleet-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        config = self._dir.path / "redis.conf"
        config.write_text(
            f"bind {LOOPBACK}\nport {self.port}\nrequirepass {self.password}\n"
            f'save ""\nappendonly no\ndir {self._dir.path}\nlogfile ""\n'
        )
        self._dir.chown(config)
        self._process = subprocess.Popen(
            [*self._dir.runas, "redis-server", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        _wait(client.ping, "redis-server", 10)
        client.close()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self.stop()
        finally:
            self._dir.remove()


def app_environment(database_url: str, redis_url: str, **settings: str) -> dict[str, str]:
    """Process environment for the app: this one, minus APP_*, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env["APP_DATABASE_URL"] = database_url
    env["APP_REDIS_URL"] = redis_url
    env.update({f"APP_{key.upper()}": value for key, value in settings.items()})
    return env


class GunicornServer:
    """``gunicorn -c python:fastapi_fleet_app.gunicorn_conf`` as a child process."""

    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.env = {**env, "APP_BIND": f"{LOOPBACK}:{self.port}", "APP_WORKERS": str(workers)}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self, timeout: float = 30) -> None:
        command = [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, ASGI_APP]
        self._process = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL)

        def healthy() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self._process.returncode}")
            conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1)
            try:
                conn.request("GET", "/health")
                return conn.getresponse().status == 200
            finally:
                conn.close()

        _wait(healthy, "gunicorn", timeout)

    def send_signal(self, signum: int) -> None:
        assert self._process is not None
        self._process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the master to exit; returns its exit code."""
        assert self._process is not None
        return self._process.wait(timeout)

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        assert self._process is not None
        self._process.terminate()
        try:
            return self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            return self._process.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._process is not None and self._process.poll() is None:
            self.stop()
