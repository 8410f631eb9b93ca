"""fleet.load.steady: a fixed rate held on an absolute clock, every outcome counted, gaps seen.

The target is a threaded stand-in for the app's item API on loopback that can be told to
answer slowly, pause, answer 503, reset connections (before or after doing the request), or
answer a POST with 200. Like the app, it answers a request whose ``Idempotency-Key`` it has
seen with its first answer.
"""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from fleet import cli
from fleet.bench.throwaway import free_port
from fleet.load import LoadError, SteadyLoad, SteadyResult, run_steady, start_steady
from fleet.load.cli import main
from fleet.load.mix import Call, HealthMix, ItemsMix
from fleet.load.tally import max_gap, percentile

LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"
# The machine may be busy: where a test wants no request to time out or be skipped, it gives
# each one 30 s and lets every request of the run be in flight at once.
PATIENT = {"timeout": 30.0, "max_in_flight": 256}


@dataclass
class State:
    """What the stand-in does and what it saw; changed by the test while the load runs."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: threading.Event = field(default_factory=threading.Event)  # cleared: requests wait
    arrivals: list[tuple[float, str, str]] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)  # the client's side of each connection used
    keys: list[tuple[str, str | None]] = field(default_factory=list)  # method and Idempotency-Key of each arrival
    answers: dict[str, tuple[int, object]] = field(default_factory=dict)  # by Idempotency-Key
    created: list[int] = field(default_factory=list)
    delay: float = 0.0
    fail_every: int = 0
    reset_every: int = 0
    reset_after_request: bool = False  # reset once the request is done, instead of before
    post_status: int = 201
    release: str = "1.0"
    failed: int = 0
    resets: int = 0
    replayed: int = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        key = self.headers.get("Idempotency-Key")
        state = self.state
        with state.lock:
            state.arrivals.append((time.monotonic(), method, self.path))
            state.keys.append((method, key))
            state.ports.add(self.client_address[1])
            count = len(state.arrivals)
        state.running.wait(10)
        time.sleep(state.delay)
        reset = state.reset_every and count % state.reset_every == 0
        if reset and not state.reset_after_request:
            self._reset()
            return
        if state.fail_every and count % state.fail_every == 0:
            with state.lock:
                state.failed += 1
            self._answer(503, {"detail": "unavailable"})
            return
        with state.lock:
            answer = state.answers.get(key) if key else None
            state.replayed += answer is not None
        if answer is None:
            answer = self._route(method, body)
            if key:
                with state.lock:
                    state.answers[key] = answer
        if reset:
            self._reset()
            return
        self._answer(*answer)

    def _reset(self) -> None:
        with self.state.lock:
            self.state.resets += 1
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        self.close_connection = True

    def _route(self, method: str, body: object) -> tuple[int, object]:
        state = self.state
        if self.path == "/health":
            return 200, {"status": "ok", "version": state.release}
        if method == "POST" and self.path == "/api/v1/items" and isinstance(body, dict) and body.get("name"):
            with state.lock:
                state.created.append(len(state.created) + 1)
                item_id = state.created[-1]
            return state.post_status, {"id": item_id, **body}
        if self.path.startswith("/api/v1/items/") and int(self.path.rsplit("/", 1)[1]) in state.created:
            return 200, {"id": int(self.path.rsplit("/", 1)[1])}
        return 404, {"detail": "not found"}

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Served-By", "stand-in")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    request_queue_size = 512  # socketserver's 5 overflows on a busy machine: connections reset


@pytest.fixture
def app() -> Iterator[tuple[str, State]]:
    state = State()
    state.running.set()
    httpd = _Server(("127.0.0.1", 0), type("Handler", (_Handler,), {"state": state}))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", state
    state.running.set()
    httpd.shutdown()
    httpd.server_close()


def _wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


class _ClockedMix(HealthMix):
    """/health, noting when each request was handed out (the moment it is sent)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def call(self, index: int) -> Call:
        self.times.append(time.monotonic())
        return super().call(index)


def test_rate_is_held_while_answers_are_slow(app):
    url, state = app
    state.delay = 0.25  # each request waits for its answer; the next ones are sent regardless
    mix = _ClockedMix()
    result = run_steady(url, rate=40, duration=2, mix=mix, **PATIENT)
    assert result.sent == 80 == result.ok_2xx  # requests 0..79 are due within the 2 s
    assert result.skipped == 0
    assert result.failures == 0
    assert result.clean
    assert result.duration_s >= 2.0
    assert result.p50_ms >= 250
    # On the schedule, never ahead of it (the first request's own delay allowed): spread over
    # the 2 s, not sent in a burst.
    assert all(sent - mix.times[0] >= index / 40 - 0.2 for index, sent in enumerate(mix.times))
    assert mix.times[-1] - mix.times[0] >= 1.8


def test_items_mix_creates_then_reads_and_patches_its_own_items(app):
    url, state = app
    result = run_steady(url, rate=50, duration=1, **PATIENT)
    assert result.clean, result.line()
    assert result.by_method["POST"] == 13
    assert result.by_method["GET"] + result.by_method["PATCH"] == 37
    assert result.by_method.get("PATCH", 0) >= 1  # PATCH slots read /health only until the first item exists
    assert sorted(result.created_ids) == state.created
    item_paths = [path for _, method, path in state.arrivals if method in ("GET", "PATCH") and path != "/health"]
    assert item_paths
    assert all(int(path.rsplit("/", 1)[1]) in state.created for path in item_paths)
    assert result.collected == {"1.0": sum(path == "/health" for _, _, path in state.arrivals)}
    assert f"created={len(state.created)}" in result.line()


def test_non_2xx_by_status_and_resets_are_counted(app):
    url, state = app
    state.fail_every, state.reset_every = 5, 7
    result = run_steady(url, rate=50, duration=0.6, mix="health", **PATIENT)
    assert result.sent == 30
    assert result.non_2xx == {503: state.failed}
    # A GET whose connection closed before any answer is sent once more (and answered then).
    assert state.resets > 0 and result.retried == state.resets
    assert result.errors == {"refused": 0, "reset": 0, "timeout": 0, "other": 0}
    assert result.ok_2xx + state.failed == 30
    assert result.failures == state.failed > 0
    assert not result.clean
    assert f"non-2xx={state.failed} (503:{state.failed}) errors=0 (refused 0, reset 0," in result.line()
    assert result.line().endswith(f" retried={state.resets}")


def _keys(state: State, method: str) -> Counter[str | None]:
    return Counter(key for arrived, key in state.keys if arrived == method)


def test_a_reset_post_is_sent_once_more_with_its_idempotency_key(app):
    url, state = app
    state.reset_every = 1  # every connection closes without an answer, retries too
    result = run_steady(url, rate=40, duration=0.5, mix="items", **PATIENT)
    assert result.sent == 20 and result.ok_2xx == 0
    assert result.errors["reset"] == 20
    assert result.retried == 20  # every request once more, then given up
    posts = _keys(state, "POST")
    assert len(posts) == result.by_method["POST"] > 0  # a key of its own for each POST
    assert set(posts.values()) == {2}  # each sent twice, with the same key
    assert all(re.fullmatch(r'"[0-9a-f-]{36}"', str(key)) for key in posts)  # the draft's quoted string
    assert "PATCH" not in result.by_method  # never an item to patch
    assert _keys(state, "GET") == {None: 2 * result.by_method["GET"]}  # once more, without a key


def test_a_post_or_patch_done_before_its_reset_is_answered_once(app):
    url, state = app
    # The request is done, then its connection reset: only its resend, with the same key, is
    # answered (with the first answer), so each item is created once and recorded once.
    state.reset_every, state.reset_after_request = 5, True
    result = run_steady(url, rate=50, duration=1, mix="items", **PATIENT)
    assert result.clean, result.line()
    assert state.resets > 0 and result.retried == state.resets
    assert sorted(result.created_ids) == state.created
    assert len(state.created) == result.by_method["POST"]
    keyed = _keys(state, "POST") + _keys(state, "PATCH")
    assert len(keyed) == result.by_method["POST"] + result.by_method["PATCH"]
    assert None not in keyed and set(keyed.values()) <= {1, 2}
    assert sum(count == 2 for count in keyed.values()) == state.replayed > 0


def test_a_post_succeeds_only_with_201(app):
    url, state = app
    state.post_status = 200
    result = run_steady(url, rate=40, duration=0.5, **PATIENT)
    posts = result.by_method["POST"]
    assert posts > 0
    assert result.non_2xx == {200: posts}
    assert result.created_ids == ()
    assert set(result.by_method) == {"POST", "GET"}  # without an item of its own, only /health is read


def test_refused_connections_are_counted():
    result = run_steady(f"http://127.0.0.1:{free_port()}", rate=40, duration=0.5)
    assert result.sent == 20
    assert result.errors["refused"] == 20
    assert result.ok_2xx == 0
    assert result.max_gap_s == result.duration_s >= 0.5  # start to end without a success


def _pause(load: SteadyLoad, state: State, seconds: float) -> None:
    """Hold every answer for ``seconds`` once the load flows, then let it flow again a while."""
    _wait_for(lambda: load.successes >= 4)
    state.running.clear()
    time.sleep(seconds)
    state.running.set()
    resumed = load.successes
    _wait_for(lambda: load.successes >= resumed + 10)


def test_timeouts_are_counted(app):
    url, state = app
    state.running.clear()  # no answer at all
    result = run_steady(url, rate=40, duration=0.5, mix="health", timeout=0.3)
    assert result.errors == {"refused": 0, "reset": 0, "timeout": 20, "other": 0}
    assert result.sent == 20
    assert result.ok_2xx == 0
    assert result.max_gap_s >= result.duration_s >= 0.5


def test_max_gap_sees_a_paused_server(app):
    url, state = app
    with start_steady(url, rate=20, **PATIENT) as load:
        _pause(load, state, 2.0)
    result = load.result()
    assert result.clean, result.line()  # held, not failed
    assert result.max_gap_s >= 1.4  # over the 1 s bar, whatever the machine's own delays
    assert result.max_gap_s < result.duration_s
    assert result.p99_ms >= 1000


def test_stop_ends_promptly_and_awaits_requests_in_flight(app):
    url, state = app
    state.delay = 0.3
    load = start_steady(url, rate=20, mix="health", timeout=3)
    _wait_for(lambda: load.successes >= 5)
    assert load.running
    began = time.monotonic()
    result = load.stop()
    # The run had no end: stop() ends it at once and waits only for the answers in flight
    # (0.3 s each, 3 s at the most).
    assert time.monotonic() - began < 6
    assert not load.running
    assert result.sent == result.ok_2xx + result.errors["timeout"]  # every request has its outcome
    assert result.ok_2xx >= 5
    assert result.duration_s < 60
    assert load.stop() is result  # stopping again changes nothing


def test_a_failing_block_stops_the_load(app):
    url, _ = app
    with pytest.raises(RuntimeError, match="deploy failed"), start_steady(url, rate=50, duration=60) as load:
        _wait_for(lambda: load.successes >= 2)
        raise RuntimeError("deploy failed")
    assert not load.running
    assert load.result().duration_s < 10


def test_a_collector_counts_any_response_field(app):
    url, state = app

    def served_by(call, response):
        return response.headers.get("X-Served-By")

    with start_steady(url, rate=50, mix="health", collect=served_by, **PATIENT) as load:
        _wait_for(lambda: load.successes >= 5)
    assert load.result().collected == {"stand-in": load.result().ok_2xx}

    with start_steady(url, rate=50, mix="health", **PATIENT) as load:  # the default: /health's release
        _wait_for(lambda: load.successes >= 5)
        state.release = "2.0"
        switched = len(state.arrivals)
        _wait_for(lambda: len(state.arrivals) >= switched + 5)  # answered after the switch, awaited by stop
    collected = load.result().collected
    assert set(collected) == {"1.0", "2.0"}
    assert sum(collected.values()) == load.result().ok_2xx


@pytest.mark.parametrize(("connections", "most"), [(3, 3), (None, 256)])
def test_connections_bound_the_pool_and_requests_beyond_wait_for_one(app, connections, most):
    url, state = app
    state.delay = 0.25  # about ten requests wait at once at 40/s
    result = run_steady(url, rate=40, duration=1.5, mix="health", connections=connections, **PATIENT)
    assert result.sent == 60 == result.ok_2xx
    assert result.clean
    if connections is None:  # one connection per request in flight, as many as the bound allows
        assert len(state.ports) > 3, state.ports
    assert len(state.ports) <= most, state.ports


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": 0}, "rate must be above 0"),
        ({"rate": 10_000}, "at most 200 requests/s"),
        ({"rate": float("nan")}, "rate must be"),
        ({"duration": 7200}, "duration must be"),
        ({"duration": 0}, "duration must be"),
        ({"max_in_flight": 0}, "max_in_flight must be 1..256"),
        ({"max_in_flight": 10_000}, "max_in_flight must be 1..256"),
        ({"connections": 0}, r"connections must be 1..max_in_flight \(32\)"),
        ({"connections": 33}, r"connections must be 1..max_in_flight \(32\)"),
        ({"timeout": 0}, "timeout must be"),
        ({"timeout": 600}, "timeout must be"),
        ({"mix": "everything"}, "unknown mix 'everything'"),
        ({"ca_file": "/no/such/ca.pem"}, "cannot use CA file /no/such/ca.pem"),
    ],
)
def test_bounds_are_refused(options, message):
    with pytest.raises(LoadError, match=message):
        SteadyLoad("http://127.0.0.1:9", **options)


@pytest.mark.parametrize("url", ["https://192.0.2.10", "http://10.231.1.5/", "ftp://127.0.0.1/"])
def test_targets_outside_lab_and_loopback_are_refused(url):
    with pytest.raises(LoadError):
        start_steady(url, duration=1)


def test_run_steady_needs_a_duration_and_result_a_start():
    with pytest.raises(LoadError, match="needs a duration"):
        run_steady("http://127.0.0.1:9")
    with pytest.raises(LoadError, match="never started"):
        SteadyLoad("http://127.0.0.1:9").result()


def test_max_gap_and_percentiles():
    assert max_gap(0.0, 10.0, []) == 10.0
    assert max_gap(0.0, 10.0, [1.0, 2.0, 9.0]) == 7.0
    assert max_gap(0.0, 10.0, [0.5, 10.4]) == 9.5  # an answer in flight at the end ends the gap there
    assert percentile([], 99) == 0.0
    assert percentile([float(n) for n in range(1, 101)], 99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_items_mix_cycle():
    mix = ItemsMix(tag="t")
    first = [mix.call(index) for index in range(4)]
    assert [(call.method, call.path) for call in first] == [
        ("POST", "/api/v1/items"),
        ("GET", "/health"),  # no item of its own yet
        ("GET", "/health"),
        ("GET", "/health"),
    ]
    assert first[0].body == {"name": "fleet-load t 0", "description": "created by fleet load steady"}
    assert first[0].succeeded(201) and not first[0].succeeded(200)
    assert HealthMix().call(7).succeeded(204)


def test_line_names_every_count():
    result = SteadyResult(
        url="http://127.0.0.1:1",
        mix="items",
        rate=20,
        duration_s=60.0,
        sent=1200,
        ok_2xx=1196,
        non_2xx={502: 1, 200: 1},
        errors={"refused": 0, "reset": 1, "timeout": 1, "other": 0},
        skipped=0,
        max_gap_s=1.234,
        p50_ms=4.0,
        p99_ms=40.5,
        max_ms=1200.0,
        by_method={"POST": 300, "GET": 600, "PATCH": 300},
        collected={"0.1.0": 100, "0.2.0": 200},
        created_ids=(1, 2),
    )
    assert result.failures == 4
    assert not result.clean
    assert result.line() == (
        "sent=1200 2xx=1196 non-2xx=2 (200:1,502:1) errors=2 (refused 0, reset 1, timeout 1, other 0) skipped=0"
        " max_gap=1.23s p50=4.0ms p99=40.5ms rate=20/s duration=60.0s mix=items (GET:600,PATCH:300,POST:300)"
        " created=2 collected: 0.1.0=100 0.2.0=200"
    )


def test_cli_steady_prints_the_line_and_exits_by_the_result(app, capsys):
    url, state = app
    assert main(["steady", url, "--rate", "40", "--duration", "0.3", "--timeout", "30"]) == 0
    assert capsys.readouterr().out.startswith("sent=12 2xx=12 non-2xx=0 errors=0 ")
    state.fail_every = 4
    assert main(["steady", url, "-r", "40", "-d", "0.3", "--mix", "health"]) == 1
    assert main(["steady", url, "-r", "40", "-d", "0.3", "--allow-failures"]) == 0
    assert main(["steady", url, "--rate", "1000"]) == 2
    assert "rate must be above 0 and at most 200" in capsys.readouterr().err


def test_fleet_load_url_is_still_wrk():
    parser = cli.build_parser()
    assert parser.parse_args(["load", "http://127.0.0.1:9/health", "-d", "5"]).handler.__name__ == "run"
    assert parser.parse_args(["load", "wrk", "http://127.0.0.1:9/health"]).connections == 64
    steady = parser.parse_args(["load", "steady", "http://127.0.0.1:9", "-r", "5"])
    assert (steady.handler.__name__, steady.rate, steady.mix) == ("run_steady_command", 5.0, "items")
