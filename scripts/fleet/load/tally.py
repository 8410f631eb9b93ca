"""Counts of a fixed-rate run (``fleet load steady``) and the result it ends in."""

from __future__ import annotations

import errno
import math
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise

import httpx

ERROR_KINDS = ("refused", "reset", "timeout", "other")
# Methods a client may send again when the connection closed before any answer (RFC 9112, 9.3.1).
# Any other (POST, PATCH) is sent with an Idempotency-Key (draft-ietf-httpapi-idempotency-key-header),
# which makes sending it again safe with an app that honours the key.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
IDEMPOTENCY_KEY = "Idempotency-Key"
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED}


def error_kind(exc: BaseException) -> str:
    """``refused``, ``reset`` (closed or reset before a whole response), ``timeout`` or ``other``."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 10:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return "refused"
        if isinstance(cause, OSError) and cause.errno in _RESET_ERRNOS:
            return "reset"
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return "reset"  # the server closed the connection without (all of) an answer
    return "other"


@dataclass(frozen=True)
class SteadyResult:
    """Outcome of one fixed-rate run; times in seconds, latencies in milliseconds.

    ``non_2xx`` maps each status that was not a success to its count: any non-2xx, and
    a POST answered with anything but 201. ``errors`` counts requests that got no answer,
    by kind (:data:`ERROR_KINDS`); ``retried`` the requests sent once more after their reused
    connection closed before any answer (a load balancer's reload closes idle connections;
    one that just carried a request races it), counted in ``sent`` once: idempotent ones as
    HTTP clients do, a POST or PATCH with the same ``Idempotency-Key``. ``skipped`` counts
    scheduled requests that were not sent because ``max_in_flight`` requests were already
    waiting. ``max_gap_s`` is the longest time without a successful response, from the first
    scheduled request to the end of the run (responses still in flight at the end included).
    ``collected`` counts the values a collector read from responses (by default the release
    ``/health`` names).
    """

    url: str
    mix: str
    rate: float
    duration_s: float
    sent: int
    ok_2xx: int
    non_2xx: dict[int, int]
    errors: dict[str, int]
    skipped: int
    max_gap_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    by_method: dict[str, int] = field(default_factory=dict)
    collected: dict[str, int] = field(default_factory=dict)
    created_ids: tuple[int, ...] = field(default=(), repr=False)
    retried: int = 0

    @property
    def failures(self) -> int:
        """Every request that did not succeed: non-2xx, errors, and skipped."""
        return sum(self.non_2xx.values()) + sum(self.errors.values()) + self.skipped

    @property
    def clean(self) -> bool:
        return self.failures == 0 and self.ok_2xx > 0

    def line(self) -> str:
        """One line: sent / 2xx / non-2xx / errors / max gap (and latency, rate, what was collected)."""
        statuses = ",".join(f"{status}:{count}" for status, count in sorted(self.non_2xx.items()))
        kinds = ", ".join(f"{kind} {self.errors.get(kind, 0)}" for kind in ERROR_KINDS)
        methods = ",".join(f"{method}:{count}" for method, count in sorted(self.by_method.items()))
        collected = " ".join(f"{value}={count}" for value, count in sorted(self.collected.items()))
        return (
            f"sent={self.sent} 2xx={self.ok_2xx} non-2xx={sum(self.non_2xx.values())}"
            f"{f' ({statuses})' if statuses else ''} errors={sum(self.errors.values())} ({kinds})"
            f" skipped={self.skipped} max_gap={self.max_gap_s:.2f}s p50={self.p50_ms:.1f}ms p99={self.p99_ms:.1f}ms"
            f" rate={self.rate:g}/s duration={self.duration_s:.1f}s mix={self.mix}{f' ({methods})' if methods else ''}"
            f"{f' created={len(self.created_ids)}' if self.created_ids else ''}"
            f"{f' collected: {collected}' if collected else ''}"
            f"{f' retried={self.retried}' if self.retried else ''}"
        )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def max_gap(start: float, end: float, successes: list[float]) -> float:
    """Longest interval without a success between ``start`` and ``end`` (or the last success after it)."""
    points = sorted([start, end, *successes])
    return max(later - earlier for earlier, later in pairwise(points))


@dataclass
class Tally:
    """What a run has seen so far; touched only from the load's event loop."""

    start: float = 0.0
    end: float = 0.0
    sent: int = 0
    skipped: int = 0
    retried: int = 0
    ok_2xx: int = 0
    non_2xx: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    by_method: Counter[str] = field(default_factory=Counter)
    collected: Counter[str] = field(default_factory=Counter)
    successes: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def response(self, ok: bool, status: int, started: float, finished: float) -> None:
        self.latencies.append(finished - started)
        if ok:
            self.ok_2xx += 1
            self.successes.append(finished)
        else:
            self.non_2xx[status] += 1

    def result(self, url: str, mix: str, rate: float, created_ids: tuple[int, ...]) -> SteadyResult:
        return SteadyResult(
            url=url,
            mix=mix,
            rate=rate,
            duration_s=self.end - self.start,
            sent=self.sent,
            ok_2xx=self.ok_2xx,
            non_2xx=dict(self.non_2xx),
            errors={kind: self.errors[kind] for kind in ERROR_KINDS},
            skipped=self.skipped,
            max_gap_s=max_gap(self.start, self.end, self.successes),
            p50_ms=percentile(self.latencies, 50) * 1000,
            p99_ms=percentile(self.latencies, 99) * 1000,
            max_ms=max(self.latencies, default=0.0) * 1000,
            by_method=dict(self.by_method),
            collected=dict(self.collected),
            created_ids=created_ids,
            retried=self.retried,
        )
