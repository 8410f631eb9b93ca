"""fleet.load: parsing, the one-line report, target checks, and real wrk runs on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from fleet.load import LoadError, LoadResult, SocketErrors, check_target, parse_result, run_load, start_load
from fleet.load.cli import main

WRK_OUTPUT = """Running 1m test @ https://10.231.0.61/health
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    46.67ms    5.64ms  62.20ms   94.19%
  57639 requests in 1.00m, 20.78MB read
  Non-2xx or 3xx responses: 9
Requests/sec:    959.10
FLEET_LOAD_RESULT {"sent":57700,"responses":57639,"duration_us":60096000,"statuses":{"200":57627,"502":9,\
"301":3},"errors":{"connect":0,"read":4,"write":1,"timeout":2},"p50_us":46140,"p99_us":3100250,"max_us":4080000}
"""


def test_parse_result_counts_every_outcome():
    result = parse_result(WRK_OUTPUT, "https://10.231.0.61/health", 64)
    assert result.sent == 57700
    assert result.responses == 57639
    assert result.ok == 57627
    assert result.non_2xx == 12  # 3xx is not a success here
    assert result.errors == SocketErrors(connect=0, read=4, write=1, timeout=2)
    assert result.errors.total == 7
    assert result.p99_ms == pytest.approx(3100.25)
    assert result.p50_ms == pytest.approx(46.14)
    assert result.rps == pytest.approx(57639 / 60.096)
    assert not result.clean


def test_line_names_sent_2xx_non_2xx_errors_p99():
    line = parse_result(WRK_OUTPUT, connections=64).line()
    assert line.startswith("sent=57700 2xx=57627 non-2xx=12 (301:3,502:9) errors=7 (connect 0, read 4, write 1,")
    assert " p99=3100.2ms rps=959 " in line


def test_clean_needs_responses_and_no_failure():
    ok = LoadResult(sent=10, responses=10, statuses={200: 10}, errors=SocketErrors(), duration_s=1, **_latency())
    assert ok.clean
    assert ok.line().startswith("sent=10 2xx=10 non-2xx=0 errors=0 ")
    assert not LoadResult(sent=0, responses=0, statuses={}, errors=SocketErrors(), duration_s=1, **_latency()).clean
    timed_out = LoadResult(
        sent=10, responses=10, statuses={200: 10}, errors=SocketErrors(timeout=1), duration_s=1, **_latency()
    )
    assert not timed_out.clean


def _latency() -> dict[str, float]:
    return {"p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0}


@pytest.mark.parametrize(
    "output",
    [
        "Running 1m test\n  0 requests in 1.00m\n",  # the script's line is missing
        WRK_OUTPUT + WRK_OUTPUT.splitlines()[-1] + "\n",  # twice
        'FLEET_LOAD_RESULT {"sent": 1}\n',  # fields missing
        WRK_OUTPUT.replace('"responses":57639', '"responses":57640'),  # statuses do not add up
    ],
)
def test_parse_result_refuses_bad_output(output):
    with pytest.raises(LoadError):
        parse_result(output)


@pytest.mark.parametrize("url", ["https://192.0.2.10/health", "http://10.231.1.5/", "ftp://127.0.0.1/", "https:///x"])
def test_targets_outside_lab_and_loopback_are_refused(url):
    with pytest.raises(LoadError):
        check_target(url)


def test_lab_and_loopback_targets_pass_and_allow_widens():
    check_target("https://10.231.0.61/health")
    check_target("http://127.0.0.1:8000/health")
    check_target("http://[::1]:8000/health")
    check_target("https://192.0.2.10/health", allow=("192.0.2.0/24",))


def test_duration_is_bounded():
    with pytest.raises(LoadError, match="duration"):
        start_load("http://127.0.0.1:9/", duration=3600)


class _Handler(http.server.BaseHTTPRequestHandler):
    """200, except every tenth request 503; ``reset`` mode drops connections unanswered."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    count = 0
    reset = False

    def do_GET(self):
        with self.lock:
            type(self).count += 1
            count = type(self).count
        if self.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.close_connection = True
            return
        status = 503 if count % 10 == 0 else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"count": 0, "reset": False, "lock": threading.Lock()})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/health", handler
    httpd.shutdown()
    httpd.server_close()


def test_real_run_counts_match_the_server(server):
    url, handler = server
    result = run_load(url, duration=2, connections=4, threads=2)
    assert result.responses > 10
    assert result.non_2xx == result.statuses[503] > 0
    assert result.ok == result.statuses[200]
    # Every response the server sent was counted; only requests cut off by the end of the
    # run (a request written or about to be, per connection) are sent without a response.
    assert result.responses <= handler.count <= result.sent
    assert result.sent - result.responses <= 2 * 4
    assert result.errors.total == 0
    assert not result.clean
    assert 0 < result.p50_ms <= result.p90_ms <= result.p95_ms <= result.p99_ms <= result.max_ms


def test_percentiles_missing_from_older_lines_read_as_zero():
    result = parse_result(WRK_OUTPUT)
    assert (result.p90_ms, result.p95_ms) == (0.0, 0.0)
    newer = parse_result(WRK_OUTPUT.replace('"p99_us"', '"p90_us":50000,"p95_us":70500,"p99_us"'))
    assert (newer.p90_ms, newer.p95_ms) == (50.0, 70.5)


def test_background_run_sees_what_the_caller_does(server):
    url, handler = server
    with start_load(url, duration=3, connections=2, threads=1) as load:
        for _ in range(200):  # until the load is flowing
            if handler.count >= 20:
                break
            threading.Event().wait(0.01)
        handler.reset = True  # the caller breaks the server mid-run
        assert load.running
    result = load.result()
    assert result.statuses[200] > 0
    assert result.errors.read > 0  # resets are socket errors, not responses
    assert not result.clean


def test_cli_exit_status_follows_the_result(server, capsys):
    url, _ = server
    assert main([url, "-d", "1", "-c", "2", "-t", "1"]) == 1  # the server answers some 503
    assert "non-2xx=" in capsys.readouterr().out
    assert main([url, "-d", "1", "-c", "2", "-t", "1", "--allow-failures"]) == 0
    assert main(["https://192.0.2.10/health", "-d", "1"]) == 2
