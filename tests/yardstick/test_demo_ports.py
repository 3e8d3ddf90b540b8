"""`yardstick demo` posts where the services listen: their YARDSTICK_*_PORT, as they read it."""

from __future__ import annotations

import pytest

from yardstick.demo import PORT_VARIABLES, PORTS, service_ports


def test_without_the_variables_the_demo_uses_the_services_default_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in PORT_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    assert service_ports() == PORTS == {"intake": 8001, "targets": 8002, "scoring": 8003, "notices": 8004}


def test_a_service_moved_by_its_variable_is_reached_there(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in PORT_VARIABLES.values():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("YARDSTICK_SCORING_PORT", "9103")
    assert service_ports() == {**PORTS, "scoring": 9103}


def test_a_port_that_is_no_number_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YARDSTICK_NOTICES_PORT", "80a")
    with pytest.raises(SystemExit, match="YARDSTICK_NOTICES_PORT='80a' is not a port number"):
        service_ports()
