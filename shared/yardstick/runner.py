"""`yardstick run` and `yardstick serve`: uvicorn servers for one or all services."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Coroutine, Generator, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from yardstick.bus.memory import MemoryBus
from yardstick.city import default_city_path, load_city
from yardstick.demo import SOCIAL_PLATFORM
from yardstick.events import SCORES
from yardstick.observability import configure_logging
from yardstick.services import SERVICES
from yardstick.settings import AuthSettings, ServiceSettings
from yardstick.tokens import Registry

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the runner (several share one loop)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()  # set once it listens

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.up.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def head_timeout_protocol(header_timeout_s: float) -> type[HttpToolsProtocol]:
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request head has not arrived within
    `header_timeout_s` of the connection opening or of the request's first byte (slowloris).

    uvicorn times out idle keep-alive connections (`keep_alive_s`, between an answer and the next
    request's first byte) but not a head that arrives a byte at a time; a body that does is the
    BodyLimit middleware's (408).
    """

    class Protocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(header_timeout_s, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            in_progress = self.cycle is not None and not self.cycle.response_complete
            if not in_progress and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()  # a new request on a kept-alive connection: its head has the same time

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return Protocol


def _server(app: Any, settings: ServiceSettings) -> _Server:
    return _Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                                  lifespan="on", http=head_timeout_protocol(settings.header_timeout_s),
                                  timeout_keep_alive=max(1, round(settings.keep_alive_s))))


# The cyclic collector's thresholds for a serving process (CPython's are 700, 10, 10). A large
# request (a unit's year of progress, a 500-rating batch) keeps tens of thousands of objects alive
# for its duration: with the default thresholds they are traversed again and again, and each full
# collection walked the whole heap of the imported libraries too (a quarter of a year-load's time
# in docs/performance.md's profile). Little of what the services allocate forms cycles.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up left (modules, apps, caches), so full collections skip it, and raise the
    thresholds. Benchmarks that drive a service in-process call it as a serving process does."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _tune_gc_once_started(servers: Sequence[_Server]) -> None:
    for server in servers:
        await server.up.wait()
    tune_gc()


async def _serve_all(servers: Sequence[_Server], extra_stop: list[Any]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    tuning = asyncio.create_task(_tune_gc_once_started(servers))
    try:
        await asyncio.gather(*(s.serve() for s in servers))
    finally:
        tuning.cancel()
        for item in extra_stop:
            await item()


def serve(name: str) -> None:
    """One service, configured by its environment (production, `make up`)."""
    spec = SERVICES[name]
    settings = spec.settings()
    configure_logging(settings.log_level)
    app = spec.create_app(settings)
    run_to_exit(_serve_all([_server(app, settings)], []))


# How long the event loop's last step (cancelling what is left) may take once the services stopped.
EXIT_GRACE_S = 5.0


def run_to_exit(main: Coroutine[Any, Any, None], *, grace_s: float = EXIT_GRACE_S) -> None:
    """Run `main` on a new event loop, then close the loop; a close that hangs ends the process.

    Closing cancels the tasks still running and waits for them without limit. With aiosqlite 0.22 one
    may never end: SQLAlchemy closes a connection of a cancelled task in a shielded task that can
    wait for ever on aiosqlite's worker thread once it has stopped (sqlalchemy/sqlalchemy#13039,
    wapiti-scanner/wapiti#802); `make run` hung at its stop twice in fourteen runs. By then the services
    have stopped and every transaction has committed or rolled back, so after `grace_s` the process
    says so and exits (a watchdog thread) with the status a normal end would have had.
    """
    runner = asyncio.Runner(loop_factory=_loop_factory())
    status = 1  # what the process exits with if the watchdog ends it: 0 once `main` returned
    try:
        runner.run(main)
        status = 0
    finally:
        def give_up() -> None:
            print(f"yardstick: tasks still running {grace_s:g} s after the services stopped (an aiosqlite "
                  "connection close that never ends); exiting without waiting for them", file=sys.stderr,
                  flush=True)
            os._exit(status)

        watchdog = threading.Timer(grace_s, give_up)
        watchdog.daemon = True
        watchdog.start()
        try:
            runner.close()
        finally:
            watchdog.cancel()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (uvicorn[standard] brings it), as `uvicorn` itself would choose.

    Running the server inside our own loop skips uvicorn's loop setup, so without this the services
    ran on the standard loop: slower I/O for every request, database round trip and Kafka batch.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def ensure_secret(data_dir: Path) -> None:
    path = data_dir / "auth-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)


def demo_overrides(today: date, social_secret: str) -> dict[str, dict[str, Any]]:
    """Settings `yardstick run` gives the demo city only (docs/decisions/demo-city.md).

    Intake's horizon reaches back to January 1 of last year, so the demo can write the previous
    year through the real API; a social platform's secret lets it post social-media items signed.
    """
    jan1 = date(today.year - 1, 1, 1)
    return {"feedback-intake": {"horizon_days": (today - jan1).days + 2,
                                "social_secrets": {SOCIAL_PLATFORM: social_secret}}}


async def _settled(bus: MemoryBus, groups: tuple[str, ...] = (), quiet_s: float = 1.5) -> None:
    """The consumer groups (all when none) have read every message, and no relay published anything
    on the topics they read for `quiet_s` (a request's events wait in its service's outbox a moment)."""
    subs = [sub for sub in bus._subs if not groups or sub.group in groups]  # the in-process bus is ours
    names = {sub.group for sub in subs}
    topics = {topic for sub in subs for topic in sub.topics if topic != SCORES}  # scores are recomputed all along
    loop = asyncio.get_running_loop()
    quiet_since: float | None = None
    seen = -1
    while True:
        published = sum(bus.published(t) for t in topics)
        idle = all(bus.lag(g) == 0 for g in names) and published == seen
        seen = published
        if not idle:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = loop.time()
        elif loop.time() - quiet_since >= quiet_s:
            return
        await asyncio.sleep(0.25)


async def _demo_child(bus: MemoryBus, *, city_path: Path, data_dir: Path, host: str, days: int, scale: float,
                      seed_value: int, social_secret: str) -> None:
    """`yardstick demo` in its own process (the other core), waiting on this bus when it asks to."""
    from yardstick.demo import SOCIAL_SECRET_ENV, child_command

    command = child_command(data_dir=data_dir, city_path=city_path, host=host, days=days, scale=scale,
                            seed_value=seed_value)
    child = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE,
                                                 env={**os.environ, SOCIAL_SECRET_ENV: social_secret})
    assert child.stdin is not None and child.stdout is not None
    try:
        while line := await child.stdout.readline():
            request, _, groups = line.decode().strip().partition(" ")
            if request == "settle":
                await _settled(bus, tuple(g for g in groups.split(",") if g))
                child.stdin.write(b"ok\n")
                await child.stdin.drain()
        if await child.wait() != 0:
            raise RuntimeError(f"the demo exited with status {child.returncode}")
    finally:
        if child.returncode is None:
            child.terminate()
            await child.wait()


async def _run_all(*, city_path: Path, data_dir: Path, demo: bool, host: str, days: int = 14,
                   scale: float = 1.0, seed_value: int = 7) -> None:
    city = load_city(city_path)
    # Publishes acknowledged once applied: what the relays had not seen applied stays in their outbox
    # across a stop or crash (the in-process log does not outlive the process; decision 0027).
    bus = MemoryBus(ack_when_applied=True)
    common: dict[str, Any] = {"data_dir": data_dir, "bus": "memory", "city": city_path}
    social_secret = secrets.token_urlsafe(24)
    overrides = demo_overrides(datetime.now(UTC).astimezone(city.timezone).date(), social_secret) \
        if demo else {}
    servers = []
    for spec in SERVICES.values():
        settings = spec.settings(**common, **overrides.get(spec.name, {}))
        settings.host = host
        app = spec.create_app(settings, bus=bus, city=city)
        servers.append(_server(app, settings))
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
        scoring = next(s.config.port for spec, s in zip(SERVICES.values(), servers, strict=True)
                       if spec.name == "scoring")
        print(f"  dashboard        http://{host}:{scoring}/dashboard (fills in while the demo runs)\n"
              f"  public pages     http://{host}:{scoring}/public", flush=True)
        if demo:
            await _demo_child(bus, city_path=city_path, data_dir=data_dir, host=host, days=days, scale=scale,
                              seed_value=seed_value, social_secret=social_secret)
            print(f"Demo city loaded. A commission token is in {data_dir / 'commission-token'}", flush=True)
        print("Issue a token: .venv/bin/yardstick token issue --role commission --subject you\n"
              "Stop with Ctrl-C.", flush=True)

    announcer = asyncio.create_task(announce())

    def report(task: asyncio.Task[None]) -> None:
        # A failing demo must say so: the services keep serving, but the newcomer needs to know why it is empty.
        if not task.cancelled() and task.exception() is not None:
            log.error("the demo stopped", exc_info=task.exception())
            print(f"The demo stopped: {task.exception()!r}", file=sys.stderr, flush=True)

    announcer.add_done_callback(report)

    async def stop_rest() -> None:
        announcer.cancel()
        await relay.stop()
        await bus.stop()
        await registry.close()

    await _serve_all(servers, [stop_rest])


def run(*, city: Path | None, data_dir: Path, demo: bool, host: str = "127.0.0.1", days: int = 14,
        scale: float = 1.0, seed: int = 7) -> None:
    configure_logging("WARNING")
    data_dir.mkdir(parents=True, exist_ok=True)
    ensure_secret(data_dir)
    run_to_exit(_run_all(city_path=city or default_city_path(), data_dir=data_dir, demo=demo, host=host,
                         days=days, scale=scale, seed_value=seed))
