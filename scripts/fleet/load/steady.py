"""Open-loop load at a fixed rate (``fleet load steady``), run in a background thread.

Request ``i`` is due at ``start + i / rate`` on the monotonic clock and is sent as its own
task, so slow answers never lower the rate: they only raise the number in flight. A request
due while ``max_in_flight`` are still waiting is not sent and counts as ``skipped``; every
request has ``timeout`` seconds for its whole answer, a wait for one of the ``connections``
(default: as many as ``max_in_flight``) included, as in any client's connection pool. The
run ends after ``duration``, or at :meth:`SteadyLoad.stop` (then never later than
:data:`MAX_DURATION`), and waits for the requests in flight before it reports.

    with start_steady("https://10.231.0.21", rate=20) as load:
        subprocess.run(["ansible-playbook", "playbooks/site.yml"], check=True)
    result = load.result()  # the block's end stopped the load
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from types import TracebackType
from typing import Self, TypedDict, Unpack

import httpx

from fleet.load.mix import MIXES, Call, Collect, Mix, health_release
from fleet.load.tally import IDEMPOTENCY_KEY, IDEMPOTENT_METHODS, SteadyResult, Tally, error_kind
from fleet.load.targets import DEFAULT_ALLOWED_NETWORKS, LoadError, check_target
from fleet.tls import tls_context

MAX_RATE = 200.0
MAX_DURATION = 3600.0
MAX_IN_FLIGHT = 256
MAX_TIMEOUT = 60.0
# How long result() waits beyond the run and its last request's timeout.
JOIN_GRACE = 10.0


class SteadyOptions(TypedDict, total=False):
    """Keyword options of :class:`SteadyLoad`, for :func:`start_steady` and :func:`run_steady`."""

    rate: float
    duration: float | None
    mix: str | Mix
    max_in_flight: int
    connections: int | None
    timeout: float
    headers: dict[str, str] | None
    ca_file: str | None
    collect: Collect | None
    allow: tuple[str, ...]


def check_bounds(
    rate: float, duration: float | None, max_in_flight: int, timeout: float, connections: int | None = None
) -> None:
    """Refuse a rate, duration, in-flight bound, connection count or timeout outside the sane range."""
    if not 0 < rate <= MAX_RATE:
        raise LoadError(f"rate must be above 0 and at most {MAX_RATE:g} requests/s, not {rate:g}")
    if duration is not None and not 0 < duration <= MAX_DURATION:
        raise LoadError(f"duration must be above 0 and at most {MAX_DURATION:g} seconds, not {duration:g}")
    if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
        raise LoadError(f"max_in_flight must be 1..{MAX_IN_FLIGHT}, not {max_in_flight}")
    if connections is not None and not 1 <= connections <= max_in_flight:
        raise LoadError(f"connections must be 1..max_in_flight ({max_in_flight}), not {connections}")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise LoadError(f"timeout must be above 0 and at most {MAX_TIMEOUT:g} seconds, not {timeout:g}")


def _mix(mix: str | Mix) -> Mix:
    if not isinstance(mix, str):
        return mix
    if mix not in MIXES:
        raise LoadError(f"unknown mix {mix!r} (known: {', '.join(MIXES)})")
    return MIXES[mix]()


class SteadyLoad:
    """A fixed-rate run against ``url`` (the app's base URL) in its own thread and event loop."""

    def __init__(
        self,
        url: str,
        *,
        rate: float = 20.0,
        duration: float | None = None,
        mix: str | Mix = "items",
        max_in_flight: int = 32,
        connections: int | None = None,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        ca_file: str | None = None,
        collect: Collect | None = health_release,
        allow: tuple[str, ...] = DEFAULT_ALLOWED_NETWORKS,
    ) -> None:
        check_bounds(rate, duration, max_in_flight, timeout, connections)
        check_target(url, allow)
        self.url = url
        self.rate = rate
        self.duration = duration
        self.limit = duration if duration is not None else MAX_DURATION
        self.mix = _mix(mix)
        self.max_in_flight = max_in_flight
        self.connections = connections or max_in_flight
        self.timeout = timeout
        self.headers = {"User-Agent": "fleet-load-steady", **(headers or {})}
        try:
            self._tls = tls_context(ca_file)
        except OSError as exc:  # ssl.SSLError is one too
            raise LoadError(f"cannot use CA file {ca_file}: {exc}") from exc
        self.collect = collect
        self._tally = Tally()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._result: SteadyResult | None = None
        self._error: Exception | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def successes(self) -> int:
        """Successful responses so far (read while the load runs, e.g. to wait until it flows)."""
        return self._tally.ok_2xx

    def start(self) -> Self:
        if self._thread is not None:
            raise LoadError("this load run was already started")
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="fleet-load-steady", daemon=True)
        self._thread.start()
        ready.wait(JOIN_GRACE)
        return self

    def stop(self) -> SteadyResult:
        """End the run now: nothing more is sent; the requests in flight are awaited."""
        self._stop.set()
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                self._loop.call_soon_threadsafe(self._wake.set)
        return self.result()

    def result(self) -> SteadyResult:
        """Wait for the end of the run (its duration, or :meth:`stop`) and return its counts."""
        if self._thread is None:
            raise LoadError("this load run was never started")
        bound = (0 if self._stop.is_set() else self.limit) + self.timeout + JOIN_GRACE
        self._thread.join(bound)
        if self._thread.is_alive():
            raise LoadError(f"the steady load did not finish within {bound:g}s")
        if self._error is not None:
            raise LoadError(f"the steady load failed: {self._error!r}") from self._error
        assert self._result is not None
        return self._result

    def __enter__(self) -> Self:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """A run without a duration (or a block that raised) stops here; one with a duration runs to its end."""
        if exc is not None or self.duration is None:
            self.stop()
        else:
            self.result()

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        except Exception as exc:  # reported by result()
            self._error = exc
        finally:
            ready.set()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        ready.set()
        limits = httpx.Limits(max_connections=self.connections, max_keepalive_connections=self.connections)
        client = httpx.AsyncClient(
            base_url=self.url,
            headers=self.headers,
            timeout=self.timeout,
            limits=limits,
            verify=self._tls,
        )
        async with client:
            tasks = await self._schedule(client)
            self._tally.end = self._loop.time()
            await asyncio.gather(*tasks)
        self._result = self._tally.result(self.url, self.mix.name, self.rate, self.mix.created_ids)

    async def _schedule(self, client: httpx.AsyncClient) -> set[asyncio.Task[None]]:
        """Send each request at its time until the end or a stop; return the tasks still in flight."""
        assert self._loop is not None
        tally = self._tally
        tasks: set[asyncio.Task[None]] = set()
        tally.start = self._loop.time()
        end = tally.start + self.limit
        index = 0
        while await self._until(min(tally.start + index / self.rate, end)):
            if tally.start + index / self.rate >= end:
                break
            if len(tasks) >= self.max_in_flight:
                tally.skipped += 1
            else:
                task = asyncio.create_task(self._send(client, self.mix.call(index)))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            index += 1
        return set(tasks)

    async def _until(self, when: float) -> bool:
        """Sleep until ``when`` on the loop's clock; False once a stop was asked for."""
        assert self._loop is not None and self._wake is not None
        if not self._stop.is_set() and when > self._loop.time():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(when):
                    await self._wake.wait()
        return not self._stop.is_set()

    async def _send(self, client: httpx.AsyncClient, call: Call) -> None:
        assert self._loop is not None
        tally = self._tally
        tally.sent += 1
        tally.by_method[call.method] += 1
        started = self._loop.time()
        # A POST or PATCH carries its own Idempotency-Key, so that it may be sent again too.
        headers = None if call.method in IDEMPOTENT_METHODS else {IDEMPOTENCY_KEY: f'"{uuid.uuid4()}"'}
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    response = await client.request(call.method, call.path, json=call.body, headers=headers)
                except (httpx.HTTPError, OSError) as exc:
                    # A request whose connection closed before any answer is sent once more: an
                    # idempotent one as HTTP clients do (RFC 9112, 9.3.1), a POST or PATCH with the
                    # same key, which the app answers with the first attempt's response if it had one.
                    if error_kind(exc) != "reset":
                        raise
                    tally.retried += 1
                    response = await client.request(call.method, call.path, json=call.body, headers=headers)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            tally.errors[error_kind(exc)] += 1
            return
        ok = call.succeeded(response.status_code)
        tally.response(ok, response.status_code, started, self._loop.time())
        self.mix.observe(call, response)
        value = self.collect(call, response) if self.collect is not None else None
        if value is not None:
            tally.collected[value] += 1


def start_steady(url: str, **options: Unpack[SteadyOptions]) -> SteadyLoad:
    """Start a fixed-rate run in the background; ``stop()`` or ``result()`` returns its counts."""
    return SteadyLoad(url, **options).start()


def run_steady(url: str, **options: Unpack[SteadyOptions]) -> SteadyResult:
    """Run at a fixed rate for ``duration`` seconds (required here) and return the counts."""
    if options.get("duration") is None:
        raise LoadError("run_steady needs a duration")
    return start_steady(url, **options).result()
