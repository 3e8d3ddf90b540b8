"""Slow and oversized requests against a real `yardstick serve` process, over raw sockets: a body
dribbled a byte a second gets 408 and a closed connection, a head dribbled the same way or never
sent gets a closed connection, an oversized body 413; ordinary and merely slowish clients are served."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from yardstick.auth import issue

SECRET = "slow-bodies-secret-0123456789abcdef"
BODY_TIMEOUT_S = 2.0
HEADER_TIMEOUT_S = 2.0
# How late past a timeout the server may act on this loaded 2-core machine before we call it broken.
SLACK_S = 6.0
TARGET = json.dumps({"unit_id": "health-commission", "year": 2026, "code": "SLOW-1", "title": "wait",
                     "unit_of_measure": "min", "direction": "decrease", "baseline": 30, "target": 20,
                     "weight": 1}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(data: Path, port: int) -> subprocess.Popen[bytes] | None:
    """`yardstick serve target-tracker` on the port, ready; None when the port was taken meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARDSTICK_")}
    env.update({"YARDSTICK_BUS": "memory", "YARDSTICK_DATA_DIR": str(data), "YARDSTICK_AUTH_SECRET": SECRET,
                "YARDSTICK_TARGETS_PORT": str(port), "YARDSTICK_TARGETS_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
                "YARDSTICK_TARGETS_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "YARDSTICK_LOG_LEVEL": "WARNING"})
    log_path = data / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("yardstick")), "serve", "target-tracker"],
                                env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            text = log_path.read_text(errors="replace")
            if "address already in use" in text.lower():  # another process took the free port first
                return None
            raise AssertionError(f"yardstick serve exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"yardstick serve not ready in 120 s:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """target-tracker as `yardstick serve` (SQLite, in-process bus), with short body and head timeouts."""
    data = tmp_path_factory.mktemp("serve")
    for _attempt in range(3):
        port = _free_port()
        proc = _start(data, port)
        if proc is not None:
            break
    else:
        raise AssertionError("no free port could be bound three times in a row")
    try:
        yield port, issue(SECRET, role="commission", subject="slow")[0]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.settimeout(0.2)
    return sock


def _head(token: str, length: int) -> bytes:
    return (f"POST /v1/targets HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def _dribble(sock: socket.socket, data: bytes, *, every_s: float, limit_s: float) -> tuple[bytes, bool, float]:
    """Send `data` a byte at a time until the server answers or closes; (answer, closed, seconds)."""
    start = time.monotonic()
    answer = b""
    closed = False
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except OSError:  # reset: the server closed
            closed = True
            break
        until = time.monotonic() + every_s
        while time.monotonic() < until:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                closed = True
                break
            answer += chunk
        if closed or time.monotonic() - start > limit_s:
            break
    return answer, closed, time.monotonic() - start


def _read_until_closed(sock: socket.socket, limit_s: float) -> tuple[bytes, bool]:
    answer = b""
    until = time.monotonic() + limit_s
    while time.monotonic() < until:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return answer, True
        if not chunk:
            return answer, True
        answer += chunk
    return answer, False


def test_a_body_dribbled_a_byte_a_second_gets_408_and_a_closed_connection(server: tuple[int, str]) -> None:
    port, token = server
    with _connect(port) as sock:
        sock.sendall(_head(token, len(TARGET)))
        answer, closed, took = _dribble(sock, TARGET, every_s=1.0, limit_s=BODY_TIMEOUT_S + SLACK_S)
        if not closed:
            more, closed = _read_until_closed(sock, 2.0)
            answer += more
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert json.loads(body)["error"]["code"] == "request_timeout"
    assert b"connection: close" in head.lower()
    assert closed, "the server kept the connection open after the 408"
    assert BODY_TIMEOUT_S - 0.5 <= took <= BODY_TIMEOUT_S + SLACK_S


def test_a_head_dribbled_a_byte_a_second_is_cut_off(server: tuple[int, str]) -> None:
    port, token = server
    with _connect(port) as sock:
        answer, closed, took = _dribble(sock, _head(token, len(TARGET)), every_s=1.0,
                                        limit_s=HEADER_TIMEOUT_S + SLACK_S)
    assert closed and answer == b"", answer[:300]
    assert HEADER_TIMEOUT_S - 0.5 <= took <= HEADER_TIMEOUT_S + SLACK_S


def test_a_connection_that_never_sends_is_closed(server: tuple[int, str]) -> None:
    port, _ = server
    start = time.monotonic()
    with _connect(port) as sock:
        answer, closed = _read_until_closed(sock, HEADER_TIMEOUT_S + SLACK_S)
    assert closed and answer == b""
    assert time.monotonic() - start >= HEADER_TIMEOUT_S - 0.5


def test_a_slowish_body_within_the_timeout_and_keep_alive_still_work(server: tuple[int, str]) -> None:
    port, token = server
    with _connect(port) as sock:
        sock.sendall(_head(token, len(TARGET)))
        third = len(TARGET) // 3
        for part in (TARGET[:third], TARGET[third:2 * third], TARGET[2 * third:]):
            sock.sendall(part)
            time.sleep(0.4)
        first = b""
        while b"\r\n\r\n" not in first or not first.rstrip().endswith(b"}"):
            try:
                first += sock.recv(65536)
            except TimeoutError:
                continue
        assert first.startswith(b"HTTP/1.1 201 "), first[:300]
        # The same connection serves the next request (keep-alive), answered at once.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        second = b""
        until = time.monotonic() + 10
        while not second.rstrip().endswith(b"}") and time.monotonic() < until:
            try:
                second += sock.recv(65536)
            except TimeoutError:
                continue
        assert second.startswith(b"HTTP/1.1 200 "), second[:300]



def _answer(sock: socket.socket, limit_s: float = 10.0) -> bytes:
    """One small JSON answer read from the socket (the test's endpoints answer with an object)."""
    out = b""
    until = time.monotonic() + limit_s
    while not out.rstrip().endswith(b"}") and time.monotonic() < until:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        out += chunk
    return out


def test_an_idle_kept_alive_connection_outlives_the_head_timeout(server: tuple[int, str]) -> None:
    """Idle time between requests is the keep-alive timeout's (75 s), not the head timeout's: a client
    that keeps connections for 5 s (httpx) never sends on one the server is closing."""
    port, _ = server
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
        answer, closed = _read_until_closed(sock, HEADER_TIMEOUT_S + 1.5)
        assert not closed and answer == b"", "an idle keep-alive connection was closed by the head timeout"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_dribbled_on_a_kept_alive_connection_is_cut_off(server: tuple[int, str]) -> None:
    port, token = server
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
        answer, closed, took = _dribble(sock, _head(token, len(TARGET)), every_s=1.0,
                                        limit_s=HEADER_TIMEOUT_S + SLACK_S)
    assert closed and answer == b"", answer[:300]
    assert HEADER_TIMEOUT_S - 0.5 <= took <= HEADER_TIMEOUT_S + SLACK_S

def test_oversized_bodies_get_413(server: tuple[int, str]) -> None:
    port, token = server
    url = f"http://127.0.0.1:{port}/v1/targets"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    declared = httpx.post(url, content=b"x" * (1024 * 1024 + 1), headers=headers, timeout=30)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body streams in
        for _ in range(20):
            yield b"x" * (64 * 1024)

    streamed = httpx.post(url, content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"
