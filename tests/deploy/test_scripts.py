"""The shell scripts: every one's syntax and shellcheck; deploy/kafka.sh and deploy/postgres.sh also in the
parts of their behaviour that need neither a broker nor a database server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = [REPO / "deploy" / "kafka.sh", REPO / "deploy" / "postgres.sh"]
# Every script run as a command; scripts/infra.sh is sourced by test.sh and bench.sh (their strict mode holds).
COMMANDS = [*SCRIPTS, *sorted(p for p in (REPO / "scripts").glob("*.sh") if p.name != "infra.sh"), REPO / ".ci" / "run"]
EVERY = [*COMMANDS, REPO / "scripts" / "infra.sh"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize("script", EVERY, ids=lambda p: p.name)
def test_bash_syntax(script: Path) -> None:
    out = run("bash", "-n", str(script))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", COMMANDS, ids=lambda p: p.name)
def test_strict_mode_and_executable(script: Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(script, os.X_OK), f"{script} is not executable"


@pytest.mark.parametrize("script", EVERY, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is not installed: apt-get install -y shellcheck (make test does)"
    # -x with the repository as the source path: test.sh and bench.sh are checked with infra.sh's functions.
    out = run(shellcheck, "--severity=style", "-x", "--source-path", str(REPO), str(script))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_unknown_subcommand_prints_usage(script: Path) -> None:
    out = run(str(script), "frobnicate")
    assert out.returncode == 2
    assert "usage:" in out.stderr


def test_postgres_url_names() -> None:
    script = str(SCRIPTS[1])
    expected = "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/yardstick_intake"
    for name in ("intake", "yardstick_intake", "YARDSTICK_INTAKE_DATABASE_URL"):
        out = run(script, "url", name, env={"PG_PORT": "15432"})
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected
    out = run(script, "url", "auth", env={"PG_PORT": "25432"})
    assert out.stdout.strip() == "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:25432/yardstick_auth"
    out = run(script, "url", "extra_db", env={"PG_DATABASES": "extra_db", "PG_PORT": "15432"})
    assert out.stdout.strip() == "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/extra_db"
    assert run(script, "url", "nope").returncode == 1


def test_postgres_rejects_bad_database_names() -> None:
    out = run(str(SCRIPTS[1]), "url", "intake", env={"PG_DATABASES": "ok_db drop;table"})
    assert out.returncode == 1
    assert "bad database name" in out.stderr


def test_kafka_reads_its_version_from_the_pom() -> None:
    pom = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    assert "<kafka.version>4.1.1</kafka.version>" in pom
    # log4j-slf4j2-impl is an SLF4J 2 provider: the API must be 2.x, not Kafka's transitive 1.7.
    assert "<artifactId>slf4j-api</artifactId>" in pom
    assert "<slf4j.version>2.0." in pom
    assert 'KAFKA_VERSION="$(sed' in SCRIPTS[0].read_text()


def test_kafka_tools_match_the_broker_version() -> None:
    """deploy/kafka.sh consumer-groups / topics run Kafka's own tools; they must be the broker's version."""
    broker = (REPO / "deploy" / "kafka" / "pom.xml").read_text()
    tools = (REPO / "deploy" / "kafka" / "tools" / "pom.xml").read_text()
    version = re.search(r"<kafka\.version>(.+?)</kafka\.version>", broker)
    assert version is not None
    assert f"<kafka.version>{version.group(1)}</kafka.version>" in tools
    assert "<artifactId>kafka-tools</artifactId>" in tools
    # The tools' jars go to their own folder, never into the running broker's libs.
    script = SCRIPTS[0].read_text()
    assert 'TOOLS="$CACHE/tools"' in script
    assert "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand" in script
    assert "org.apache.kafka.tools.TopicCommand" in script
    out = run(str(SCRIPTS[0]), "frobnicate")
    assert "consumer-groups" in out.stderr and "topics" in out.stderr


@pytest.fixture
def stand_in() -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose command line names kafka.Kafka, as deploy/kafka.sh's pid check wants."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "kafka.Kafka"])
    yield proc
    proc.kill()
    proc.wait()


def isolated(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "PG_"))}
    return {**env, **extra}


def test_kafka_status_and_stop_go_by_the_running_brokers_port(tmp_path: Path,
                                                               stand_in: subprocess.Popen[bytes]) -> None:
    """A broker started with KAFKA_PORT=29999: status reports 29999 without KAFKA_PORT, and a KAFKA_PORT of
    another broker neither reads as this one (exit 4) nor stops it (a scratch checkout: never the real one)."""
    (tmp_path / "deploy" / "kafka").mkdir(parents=True)
    shutil.copy(SCRIPTS[0], tmp_path / "deploy" / "kafka.sh")
    shutil.copy(REPO / "deploy" / "kafka" / "pom.xml", tmp_path / "deploy" / "kafka" / "pom.xml")
    script, cache = str(tmp_path / "deploy" / "kafka.sh"), tmp_path / ".cache" / "kafka"
    cache.mkdir(parents=True)
    assert subprocess.run(["bash", script, "status"], env=isolated(), capture_output=True).returncode == 3
    (cache / "kafka.pid").write_text(f"{stand_in.pid}\n")
    (cache / "server.properties").write_text("listeners=PLAINTEXT://127.0.0.1:29999,CONTROLLER://127.0.0.1:29998\n"
                                             "advertised.listeners=PLAINTEXT://127.0.0.1:29999\n")

    def kafka(action: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", script, action], env=isolated(**env), capture_output=True, text=True,
                              timeout=60)

    out = kafka("status")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"kafka: running (pid {stand_in.pid}) on 127.0.0.1:29999",
                                       "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29999"]
    assert kafka("status", KAFKA_PORT="29999").returncode == 0
    other = kafka("status", KAFKA_PORT="19092")
    assert other.returncode == 4
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:29999" in other.stdout
    refused = kafka("stop", KAFKA_PORT="19092")
    assert refused.returncode == 1
    assert "not stopping it" in refused.stderr
    assert stand_in.poll() is None
    started = kafka("start", KAFKA_PORT="19092")
    assert started.returncode == 1
    assert "runs on port 29999, not 19092" in started.stderr
    assert stand_in.poll() is None


def test_postgres_url_takes_the_running_clusters_port(tmp_path: Path, stand_in: subprocess.Popen[bytes]) -> None:
    """A cluster started with PG_PORT=29997: `url` gives its port unless PG_PORT names another."""
    script = str(SCRIPTS[1])
    data = tmp_path / "data"
    data.mkdir()

    def url(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", script, "url", "scoring"], env=isolated(PG_STATE_DIR=str(tmp_path), **env),
                              capture_output=True, text=True, timeout=60)

    assert url().stdout.strip() == "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/yardstick_scoring"
    # postmaster.pid: the pid, the data directory, the start time, the port, ...
    (data / "postmaster.pid").write_text(f"{stand_in.pid}\n{data}\n1700000000\n29997\n{tmp_path}/run\n127.0.0.1\n")
    assert url().stdout.strip() == "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:29997/yardstick_scoring"
    given = url(PG_PORT="25432")
    assert given.stdout.strip() == "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:25432/yardstick_scoring"
    assert "runs on port 29997" in given.stderr
    stand_in.kill()
    stand_in.wait()  # a stale pid file: the server is gone
    assert url().stdout.strip() == "postgresql+asyncpg://yardstick:yardstick@127.0.0.1:15432/yardstick_scoring"


@pytest.mark.integration
def test_infra_up_takes_the_address_the_running_broker_names() -> None:
    """test.sh and bench.sh (through infra.sh) find the broker deploy/kafka.sh runs, start no second one,
    and export the address its status reads from the broker's own config (as scripts/up.sh does; with
    status refusing a KAFKA_PORT other than the running broker's, that is the address KAFKA_PORT names)."""
    expected = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not expected:
        pytest.fail("this test needs the test broker: run it through `make test`", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    port = expected.rsplit(":", 1)[1]
    out = subprocess.run(["bash", "-c", 'set -euo pipefail; source scripts/infra.sh; infra_up probe; '
                          'echo "kafka at $KAFKA_BOOTSTRAP_SERVERS"'],
                         capture_output=True, text=True, timeout=120, cwd=REPO, env=env | {"KAFKA_PORT": port})
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == f"kafka at {expected}"
    assert "starting a local Kafka broker" not in out.stdout  # the running one, not a second
