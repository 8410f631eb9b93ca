"""The nginx role's upstream watcher on real sockets (loopback).

A listener whose accept queue is full stands for a vanished host: the kernel drops further
SYNs, so a connect gets neither SYN-ACK nor RST, as with a machine that is off or cut off.
"""

import importlib.util
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/nginx/files/upstream_watch.py"
_spec = importlib.util.spec_from_file_location("upstream_watch", SCRIPT)
watch = importlib.util.module_from_spec(_spec)
sys.modules["upstream_watch"] = watch
_spec.loader.exec_module(watch)


@pytest.fixture
def vanished():
    """A target that answers no connect: a listener with a full accept queue, and the connection that fills it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    # The accept queue takes backlog + 1 connections; later SYNs are dropped.
    for _ in range(2):
        filler = socket.socket()
        filler.settimeout(0.5)
        try:
            filler.connect(("127.0.0.1", port))
        except TimeoutError:
            filler.close()
            break
        fillers.append(filler)
    yield watch.Target("127.0.0.1", port), fillers
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture
def listening():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield watch.Target("127.0.0.1", server.getsockname()[1])
    server.close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.231.0.32:8000", watch.Target("10.231.0.32", 8000)),
        ("[fd00::32]:8000", watch.Target("fd00::32", 8000)),
    ],
)
def test_targets_parse(text, expected):
    assert watch.Target.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["app1:8000", "10.231.0.32", "10.231.0.32:0", "10.231.0.32:70000", "[fd00::32]:x"])
def test_bad_targets_are_refused(text):
    with pytest.raises(ValueError, match="expected ADDRESS:PORT"):
        watch.Target.parse(text)


def test_probes_tell_a_listener_a_stopped_service_and_a_vanished_host_apart(listening, vanished):
    stopped = watch.Target("127.0.0.1", _closed_port())
    gone, _ = vanished
    outcomes = watch.probe_all([listening, stopped, gone], 0.3)
    assert outcomes == {listening: watch.OK, stopped: watch.REFUSED, gone: watch.TIMEOUT}


def test_a_host_is_gone_only_after_misses_in_a_row():
    state = watch.Watch(watch.Target("127.0.0.1", 1), misses_to_gone=3)
    outcomes = [watch.TIMEOUT, watch.TIMEOUT, watch.OK, watch.TIMEOUT, watch.TIMEOUT, watch.REFUSED]
    assert [state.observe(outcome) for outcome in outcomes] == [False] * 6
    assert not state.gone
    assert [state.observe(watch.TIMEOUT) for _ in range(4)] == [False, False, True, True]
    assert state.gone
    assert state.observe(watch.REFUSED) is False
    assert not state.gone
    assert state.events == ["127.0.0.1:1 gone: no answer to 3 connects in a row", "127.0.0.1:1 answers again (refused)"]


@pytest.mark.skipif(os.geteuid() != 0, reason="ss --kill needs CAP_NET_ADMIN")
def test_a_request_waiting_on_a_vanished_host_fails_at_once(vanished):
    target, fillers = vanished
    assert fillers, "the accept queue did not fill"
    waiting = fillers[0]
    waiting.settimeout(30)
    waiting.sendall(b"GET /health HTTP/1.1\r\nHost: app\r\n\r\n")
    failed = {}

    def read() -> None:
        try:
            waiting.recv(1)
        except OSError as exc:
            failed["error"] = exc

    reader = threading.Thread(target=read)
    reader.start()
    watch.run([target], interval=0.2, misses=3, cycles=4)
    reader.join(35)
    # Aborted by the watcher (a read timeout would be TimeoutError, after 30 s).
    assert isinstance(failed.get("error"), ConnectionAbortedError), failed


def test_the_command_line_refuses_bad_input():
    done = subprocess.run([sys.executable, str(SCRIPT), "app1:8000"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "'app1:8000'" in done.stderr
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--interval", "0", "10.0.0.1:8000"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "--interval" in done.stderr
