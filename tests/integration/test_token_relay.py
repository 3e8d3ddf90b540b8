"""A revocation made while the commission's tool cannot reach the broker still reaches every service."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from harness import REPO, System, wait_for

from yardstick import auth
from yardstick.city import default_city_path, load_city

CITY = load_city(default_city_path())


def _token_cli(system: System, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "yardstick"), "token", *args], env=env or system.env,
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=True)


def test_a_revocation_that_waited_in_the_registry_is_relayed_by_the_services(system: System) -> None:
    unit = CITY.departments[-1].id
    issued = _token_cli(system, "issue", "--role", "coordinator", "--unit", unit, "--subject", "relay-test")
    token = issued.stdout.strip().splitlines()[-1]
    token_id = auth.Authenticator(system.secret, auth.Revocations(), audience="yardstick").verify(token).token_id
    path = f"/v1/units/{unit}/feedback"
    assert system.get("feedback-intake", path, token).status_code == 200
    # The tool cannot reach the broker (nothing listens on port 9): the event is committed to the
    # registry's outbox, and only a service's relay can publish it. (The tool may still report
    # "announced" when a service was quicker than its own attempt.)
    offline = {**system.env, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    assert _token_cli(system, "revoke", token_id, env=offline).stdout.strip() == "revoked"
    started = time.monotonic()
    wait_for(lambda: system.get("feedback-intake", path, token).status_code == 401, timeout=30,
             what="intake to refuse the token once a service relayed the revocation")
    wait_for(lambda: system.get("notices", f"/v1/notices?unit_id={unit}", token).status_code == 401, timeout=30,
             what="notices to refuse it too")
    print(f"revocation relayed by the services and applied in {time.monotonic() - started:.2f}s")
