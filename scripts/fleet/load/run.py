"""wrk with a counting Lua script, in a background process, and its parsed result."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from fleet.load.targets import DEFAULT_ALLOWED_NETWORKS, LoadError, check_target

# Longest run accepted (seconds); the process is killed this long after its duration.
MAX_DURATION = 600
KILL_GRACE = 30
RESULT_MARKER = "FLEET_LOAD_RESULT "

# Every thread counts what it sends and what comes back; ``done`` (main Lua state) sums
# the threads' counters and prints one JSON line after wrk's own report.
LUA_SCRIPT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  statuses = {}
  payload = wrk.format(nil, nil)
end

function request()
  sent = sent + 1
  return payload
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local total_sent = 0
  local by_status = {}
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    for status, count in pairs(thread:get("statuses")) do
      by_status[status] = (by_status[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(by_status) do
    table.insert(parts, string.format('"%s":%d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'FLEET_LOAD_RESULT {"sent":%d,"responses":%d,"duration_us":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"p50_us":%d,"p90_us":%d,"p95_us":%d,' ..
    '"p99_us":%d,"max_us":%d}\n',
    total_sent, summary.requests, summary.duration, table.concat(parts, ","),
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class SocketErrors:
    """wrk's socket error counters."""

    connect: int = 0
    read: int = 0
    write: int = 0
    timeout: int = 0

    @property
    def total(self) -> int:
        return self.connect + self.read + self.write + self.timeout


@dataclass(frozen=True)
class LoadResult:
    """Outcome of one run; latencies in milliseconds.

    ``sent`` counts every request wrk issued, so it exceeds ``responses`` by the requests
    that failed with a socket error and those cut off by the end of the run (about one
    per connection). ``statuses`` maps each status to its count of responses.
    """

    sent: int
    responses: int
    statuses: dict[int, int]
    errors: SocketErrors
    duration_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    url: str = ""
    connections: int = 0
    output: str = field(default="", repr=False, compare=False)
    p90_ms: float = 0.0
    p95_ms: float = 0.0

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        """Responses with any other status (3xx included)."""
        return sum(count for status, count in self.statuses.items() if not 200 <= status < 300)

    @property
    def rps(self) -> float:
        return self.responses / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def clean(self) -> bool:
        """Every response 2xx and no socket error."""
        return self.non_2xx == 0 and self.errors.total == 0 and self.responses > 0

    def line(self) -> str:
        """One line: sent / 2xx / non-2xx / errors / p99 (and rps, statuses, error kinds)."""
        others = ",".join(f"{status}:{count}" for status, count in sorted(self.statuses.items()) if status // 100 != 2)
        kinds = self.errors
        return (
            f"sent={self.sent} 2xx={self.ok} non-2xx={self.non_2xx}{f' ({others})' if others else ''}"
            f" errors={kinds.total} (connect {kinds.connect}, read {kinds.read}, write {kinds.write},"
            f" timeout {kinds.timeout}) p99={self.p99_ms:.1f}ms rps={self.rps:.0f}"
            f" duration={self.duration_s:.1f}s connections={self.connections}"
        )


def parse_result(output: str, url: str = "", connections: int = 0) -> LoadResult:
    """Read the counting script's line out of wrk's output."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_MARKER)]
    if len(lines) != 1:
        raise LoadError(f"expected one {RESULT_MARKER.strip()} line in wrk's output, found {len(lines)}:\n{output}")
    try:
        data = json.loads(lines[0][len(RESULT_MARKER) :])
        statuses = {int(status): int(count) for status, count in data["statuses"].items()}
        errors = SocketErrors(**{kind: int(data["errors"][kind]) for kind in ("connect", "read", "write", "timeout")})
        result = LoadResult(
            sent=int(data["sent"]),
            responses=int(data["responses"]),
            statuses=statuses,
            errors=errors,
            duration_s=int(data["duration_us"]) / 1e6,
            p50_ms=int(data["p50_us"]) / 1e3,
            p99_ms=int(data["p99_us"]) / 1e3,
            p90_ms=int(data.get("p90_us", 0)) / 1e3,
            p95_ms=int(data.get("p95_us", 0)) / 1e3,
            max_ms=int(data["max_us"]) / 1e3,
            url=url,
            connections=connections,
            output=output,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"unreadable {RESULT_MARKER.strip()} line: {lines[0]!r}") from exc
    if sum(statuses.values()) != result.responses:
        raise LoadError(f"status counts {statuses} do not add up to {result.responses} responses")
    return result


class LoadRun:
    """One wrk process running in the background; :meth:`result` waits for it."""

    def __init__(
        self,
        url: str,
        *,
        duration: int = 60,
        connections: int = 64,
        threads: int = 2,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        allow: tuple[str, ...] = DEFAULT_ALLOWED_NETWORKS,
        wrk: str = "wrk",
    ) -> None:
        if not 1 <= duration <= MAX_DURATION:
            raise LoadError(f"duration must be 1..{MAX_DURATION} seconds, not {duration}")
        if threads < 1 or connections < threads:
            raise LoadError(f"need at least one connection per thread ({connections} connections, {threads} threads)")
        check_target(url, allow)
        executable = shutil.which(wrk)
        if executable is None:
            raise LoadError(f"{wrk} not found (apt-get install wrk)")
        self.url = url
        self.duration = duration
        self.connections = connections
        self._dir = tempfile.TemporaryDirectory(prefix="fleet-load-")
        script = Path(self._dir.name) / "count.lua"
        script.write_text(LUA_SCRIPT)
        self.command = [
            executable,
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={duration}s",
            f"--timeout={timeout:g}s",
            f"--script={script}",
        ]
        for name, value in (headers or {}).items():
            self.command += ["--header", f"{name}: {value}"]
        self.command.append(url)
        self._process: subprocess.Popen[str] | None = None
        self._result: LoadResult | None = None
        self.started_at = 0.0

    def start(self) -> Self:
        if self._process is not None:
            raise LoadError("this load run was already started")
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(  # noqa: S603 - a fixed wrk command line, no shell
            self.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def result(self) -> LoadResult:
        """Wait for the end of the run (bounded) and return its counts."""
        if self._result is not None:
            return self._result
        if self._process is None:
            raise LoadError("this load run was never started")
        try:
            stdout, stderr = self._process.communicate(timeout=self.duration + KILL_GRACE)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise LoadError(f"wrk did not finish within {self.duration + KILL_GRACE}s; killed") from None
        finally:
            self._dir.cleanup()
        if self._process.returncode != 0:
            raise LoadError(f"wrk exited with {self._process.returncode}: {stderr.strip() or stdout.strip()}")
        self._result = parse_result(stdout, self.url, self.connections)
        return self._result

    def stop(self) -> None:
        """Kill a run that is still going (its result is then unavailable)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.communicate()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None:
            self.stop()
        else:
            self.result()


def start_load(
    url: str,
    *,
    duration: int = 60,
    connections: int = 64,
    threads: int = 2,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
    allow: tuple[str, ...] = DEFAULT_ALLOWED_NETWORKS,
) -> LoadRun:
    """Start a run in the background and return it; ``result()`` waits for the counts."""
    run = LoadRun(
        url,
        duration=duration,
        connections=connections,
        threads=threads,
        timeout=timeout,
        headers=headers,
        allow=allow,
    )
    return run.start()


def run_load(
    url: str,
    *,
    duration: int = 60,
    connections: int = 64,
    threads: int = 2,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
    allow: tuple[str, ...] = DEFAULT_ALLOWED_NETWORKS,
) -> LoadResult:
    """Run the load to its end and return the counts."""
    run = start_load(
        url,
        duration=duration,
        connections=connections,
        threads=threads,
        timeout=timeout,
        headers=headers,
        allow=allow,
    )
    return run.result()
