"""scripts/up.sh (`make up`) in a scratch copy of the repository whose deploy/ scripts and `yardstick` are
stand-ins: the ports it uses, the broker address it hands over, and what it takes for ready."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = {"feedback-intake": "INTAKE", "target-tracker": "TARGETS", "scoring": "SCORING", "notices": "NOTICES"}

# `yardstick serve SERVICE`: serves /readyz on YARDSTICK_<PREFIX>_PORT, answering as the service (or as
# FAKE_<PREFIX>_ANSWERS_AS), and writes the broker address it was given to FAKE_RECORD/<service>.
FAKE_YARDSTICK = """#!{python}
import http.server, json, os, sys
service = sys.argv[2]
prefix = {prefixes}[service]
name = os.environ.get(f"FAKE_{{prefix}}_ANSWERS_AS", service)
with open(os.path.join(os.environ["FAKE_RECORD"], service), "w") as out:
    out.write(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"service": name, "database": "ok"}}, separators=(",", ":")).encode()
        self.send_response(200 if self.path == "/readyz" else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", int(os.environ[f"YARDSTICK_{{prefix}}_PORT"])), Handler).serve_forever()
"""

FAKE_KAFKA = """#!/usr/bin/env bash
echo "$1" >>"$FAKE_RECORD/kafka.sh"
case "$1" in
  status) echo "kafka: running"; echo "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$FAKE_KAFKA_PORT" ;;
  *) exit 0 ;;
esac
"""

FAKE_POSTGRES = """#!/usr/bin/env bash
case "$1" in
  status) exit 0 ;;
  start)
    for s in INTAKE TARGETS SCORING NOTICES AUTH; do echo "YARDSTICK_${s}_DATABASE_URL=sqlite+aiosqlite:///x"; done ;;
  *) exit 0 ;;
esac
"""


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A scratch repository: the real scripts/up.sh, stand-ins for the rest."""
    if shutil.which("curl") is None:
        pytest.fail("scripts/up.sh needs curl: apt-get install curl", pytrace=False)
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "up.sh", tmp_path / "scripts" / "up.sh")
    for path, text in (("deploy/kafka.sh", FAKE_KAFKA), ("deploy/postgres.sh", FAKE_POSTGRES),
                       (".venv/bin/yardstick", FAKE_YARDSTICK.format(python=sys.executable,
                                                                     prefixes=json.dumps(PREFIX)))):
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755)
    (tmp_path / "record").mkdir()
    yield tmp_path
    up(tmp_path, "stop", env={})  # stops whatever a test started, by pid
    for pid_file in (tmp_path / ".cache" / "up").glob("*.pid"):  # pragma: no cover - stop failed
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def up(root: Path, action: str, *, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("YARDSTICK_", "KAFKA_", "PG_"))}
    return subprocess.run(["bash", str(root / "scripts" / "up.sh"), action], capture_output=True, text=True,
                          timeout=120, env={**base, "FAKE_RECORD": str(root / "record"), "FAKE_KAFKA_PORT": "29092",
                                            "YARDSTICK_AUTH_SECRET": "s", "UP_READY_TIMEOUT": "20", **env})


def port_env(ports: list[int]) -> dict[str, str]:
    return {f"YARDSTICK_{prefix}_PORT": str(port) for prefix, port in zip(PREFIX.values(), ports, strict=True)}


def test_services_on_their_configured_ports_with_the_running_brokers_address(root: Path) -> None:
    ports = free_ports(4)
    out = up(root, "start", env=port_env(ports))
    assert out.returncode == 0, out.stdout + out.stderr
    for service, port in zip(PREFIX, ports, strict=True):
        assert f"up: {service} ready: http://127.0.0.1:{port}/docs" in out.stdout
        # The address deploy/kafka.sh status reported, not a default.
        assert (root / "record" / service).read_text() == "127.0.0.1:29092"
    status = up(root, "status", env=port_env(ports))
    assert all(f"{service}: ready on 127.0.0.1:{port}" in status.stdout for service, port in zip(PREFIX, ports,
                                                                                                 strict=True))
    pids = [int((root / ".cache" / "up" / f"{s}.pid").read_text()) for s in PREFIX]
    assert up(root, "stop", env=port_env(ports)).returncode == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_broker_given_is_used_and_deploy_kafka_left_alone(root: Path) -> None:
    out = up(root, "start", env={**port_env(free_ports(4)), "KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9092"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (root / "record" / "kafka.sh").exists()
    assert all((root / "record" / s).read_text() == "kafka.example:9092" for s in PREFIX)


def test_a_port_answering_as_another_service_is_not_ready(root: Path) -> None:
    env = {**port_env(free_ports(4)), "FAKE_SCORING_ANSWERS_AS": "notices", "UP_READY_TIMEOUT": "3"}
    out = up(root, "start", env=env)
    assert out.returncode == 1
    assert "up: scoring not ready after 3s" in out.stderr


def test_a_taken_port_is_refused_before_anything_starts(root: Path) -> None:
    ports = free_ports(4)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[2]))
        taken.listen()
        out = up(root, "start", env=port_env(ports))
    assert out.returncode == 1
    assert f"127.0.0.1:{ports[2]} (scoring) is taken by another program" in out.stderr
    assert not list((root / ".cache" / "up").glob("*.pid"))
