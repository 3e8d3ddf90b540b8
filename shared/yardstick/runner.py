"""`yardstick run` and `yardstick serve`: uvicorn servers for one or all services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from yardstick.bus.memory import MemoryBus
from yardstick.city import default_city_path, load_city
from yardstick.observability import configure_logging
from yardstick.services import SERVICES
from yardstick.settings import AuthSettings
from yardstick.tokens import Registry

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the runner (several share one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _server(app: Any, host: str, port: int) -> _Server:
    return _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                  lifespan="on"))


async def _serve_all(servers: Sequence[_Server], extra_stop: list[Any]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        for item in extra_stop:
            await item()


def serve(name: str) -> None:
    """One service, configured by its environment (production, `make up`)."""
    spec = SERVICES[name]
    settings = spec.settings()
    configure_logging(settings.log_level)
    app = spec.create_app(settings)
    asyncio.run(_serve_all([_server(app, settings.host, settings.port)], []))


def ensure_secret(data_dir: Path) -> None:
    path = data_dir / "auth-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)


async def _run_all(*, city_path: Path, data_dir: Path, demo: bool, host: str) -> None:
    city = load_city(city_path)
    bus = MemoryBus()
    common: dict[str, Any] = {"data_dir": data_dir, "bus": "memory", "city": city_path}
    servers = []
    for spec in SERVICES.values():
        settings = spec.settings(**common)
        settings.host = host
        app = spec.create_app(settings, bus=bus, city=city)
        servers.append(_server(app, settings.host, settings.port))
    registry = Registry(AuthSettings(**common))
    await registry.prepare()
    relay = registry.relay(bus)
    await bus.start()
    await relay.start()

    async def announce() -> None:
        while not all(s.started for s in servers):  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.1)
        print("\nYardstick is running (one process, in-process bus, SQLite under "
              f"{data_dir}/):", flush=True)
        for spec, server in zip(SERVICES.values(), servers, strict=True):
            print(f"  {spec.name:16} http://{host}:{server.config.port}/docs", flush=True)
        if demo:
            from yardstick.demo import seed

            await seed(registry=registry, city=city, host=host)
            print(f"Demo city loaded. A commission token is in {data_dir / 'commission-token'}", flush=True)
        print("Issue a token: .venv/bin/yardstick token issue --role commission --subject you\n"
              "Stop with Ctrl-C.", flush=True)

    announcer = asyncio.create_task(announce())

    async def stop_rest() -> None:
        announcer.cancel()
        await relay.stop()
        await bus.stop()
        await registry.close()

    await _serve_all(servers, [stop_rest])


def run(*, city: Path | None, data_dir: Path, demo: bool, host: str = "127.0.0.1") -> None:
    configure_logging("WARNING")
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_secret(data_dir)
    asyncio.run(_run_all(city_path=city or default_city_path(), data_dir=data_dir, demo=demo, host=host))
