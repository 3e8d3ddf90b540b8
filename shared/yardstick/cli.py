"""The `yardstick` command line (city-profile.md)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from yardstick.services import SERVICES


def _token(args: argparse.Namespace) -> int:
    from yardstick.city import CityProfileError, default_city_path, load_city
    from yardstick.runtime import make_bus
    from yardstick.settings import AuthSettings
    from yardstick.tokens import Registry

    settings = AuthSettings()

    async def main() -> int:
        registry = Registry(settings)
        await registry.prepare()
        try:
            if args.action == "issue":
                try:
                    city = load_city(settings.city or default_city_path())
                except CityProfileError as exc:
                    print(exc, file=sys.stderr)
                    return 2
                if args.unit and args.unit not in city.unit_ids:
                    print(f"unit {args.unit!r} is not in the city profile", file=sys.stderr)
                    return 2
                if args.window and args.window not in city.window_ids:
                    print(f"window {args.window!r} is not in the city profile", file=sys.stderr)
                    return 2
                try:
                    token, claims = await registry.issue(role=args.role, subject=args.subject,
                                                         unit_id=args.unit, window_id=args.window,
                                                         ttl_s=args.ttl)
                except (ValueError, RuntimeError) as exc:
                    print(f"cannot issue: {exc}", file=sys.stderr)
                    return 2
                print(f"token id {claims['jti']} role {args.role}", file=sys.stderr)
                await _announce(registry, settings, make_bus)
                print(token)
            elif args.action == "revoke":
                try:
                    changed = await registry.revoke(args.token_id)
                except KeyError:
                    print(f"no token {args.token_id} in the registry; `yardstick token list` shows them",
                          file=sys.stderr)
                    return 2
                await _announce(registry, settings, make_bus)
                print("revoked" if changed else "already revoked")
            elif args.action == "relay":
                await _announce(registry, settings, make_bus)
            else:
                rows = await registry.list(role=args.role, window_id=args.window, unit_id=args.unit)
                for row in rows:
                    print(json.dumps(row, default=str, ensure_ascii=False))
            return 0
        finally:
            await registry.close()

    return asyncio.run(main())


async def _announce(registry: Any, settings: Any, make_bus: Any) -> None:
    """Publish the registry's outbox now when Kafka is configured; `yardstick run` relays it otherwise."""
    if settings.bus != "kafka":
        print("the running `yardstick run` announces this within a second", file=sys.stderr)
        return
    bus = make_bus(settings)
    relay = registry.relay(bus)
    try:
        # As the registry's one relay (its lock, on PostgreSQL): every service may be relaying it too.
        if await relay.publish_waiting():
            print("announced on auth.v1", file=sys.stderr)
        else:
            print("a running service relays the registry's outbox (it holds its lock): it announces this "
                  "as soon as it reaches Kafka", file=sys.stderr)
    except Exception as exc:
        print(f"Kafka unreachable ({exc}); the event waits in the registry's outbox: "
              "run `yardstick token relay` once Kafka is back", file=sys.stderr)
    finally:
        await bus.stop()


def _demo(args: argparse.Namespace) -> int:
    from yardstick.city import default_city_path, load_city
    from yardstick.demo import seed
    from yardstick.settings import AuthSettings
    from yardstick.tokens import Registry

    settings = AuthSettings()

    async def main() -> int:
        registry = Registry(settings)
        await registry.prepare()
        try:
            tally = await seed(registry=registry, city=load_city(settings.city or default_city_path()),
                               host=args.host, days=args.days, scale=args.scale, seed_value=args.seed)
        finally:
            await registry.close()
        return 0 if tally.posted else 1

    return asyncio.run(main())


def _migrate(args: argparse.Namespace) -> int:
    """Each named service's database to the head of its own migrations, through db.migrate (the same
    function, the same advisory lock as at start-up), so a Job or a one-shot can run it before the pods."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from yardstick import db

    names = list(SERVICES) if args.service == "all" else [args.service]

    async def one(name: str) -> str:
        spec = SERVICES[name]
        # By import path: the shared package never imports a service (import-linter).
        migrations: str = importlib.import_module(f"{spec.package}.app").MIGRATIONS
        head = ScriptDirectory(migrations).get_current_head()
        engine = db.make_engine(spec.settings().database_url)
        try:
            print(f"{name}: migrating {engine.url.render_as_string(hide_password=True)} to {head}", file=sys.stderr)
            await db.migrate(engine, migrations)
            async with engine.connect() as conn:
                revision = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        finally:
            await engine.dispose()
        return str(revision)

    async def main() -> int:
        for name in names:
            try:
                revision = await one(name)
            except Exception as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                print(f"{name}: migration failed: {type(exc).__name__}: {first}", file=sys.stderr)
                return 1
            print(f"{name}: at revision {revision}")
        return 0

    return asyncio.run(main())


def _dlq(args: argparse.Namespace) -> int:
    from yardstick.bus import BusUnavailable
    from yardstick.bus.deadletters import NoSuchTopic, physical_dlq, read
    from yardstick.settings import ServiceSettings

    settings = ServiceSettings()
    topic = physical_dlq(args.topic, settings.topic_prefix)
    print(f"reading {topic} on {settings.kafka_bootstrap_servers} ...", file=sys.stderr)
    try:
        total, found = asyncio.run(read(settings.kafka_bootstrap_servers, topic, limit=args.limit))
    except NoSuchTopic:
        print(f"no topic {topic} on the broker (is YARDSTICK_TOPIC_PREFIX right?)", file=sys.stderr)
        return 2
    except BusUnavailable as exc:
        print(str(exc), file=sys.stderr)
        return 1
    for entry in found:
        print(json.dumps(entry.as_json(), ensure_ascii=False))
    print(f"{topic}: {total} dead-lettered message(s), {len(found)} shown", file=sys.stderr)
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from yardstick.events import json_schemas

    root = Path(args.dir)
    schemas = json_schemas()
    # A file for a type that no longer exists is stale too.
    stale = [str(p) for p in sorted(root.glob("*.json")) if p.stem not in schemas]
    if args.action == "write":
        for leftover in stale:
            Path(leftover).unlink()
        stale = []
    for event_type, schema in schemas.items():
        path = root / f"{event_type}.json"
        text = json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        if args.action == "write":
            root.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(str(path))
    if stale:
        print("stale event schemas (run `yardstick schemas write`):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yardstick", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the whole system in one process (in-process bus, SQLite)")
    run.add_argument("--city", type=Path)
    run.add_argument("--data-dir", type=Path, default=Path(".data"))
    run.add_argument("--no-demo", action="store_true")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--days", type=int, default=14, help="days of daily demo activity before today")
    run.add_argument("--scale", type=float, default=1.0, help="demo volume (1 = the default city)")
    run.add_argument("--seed", type=int, default=7)

    serve = sub.add_parser("serve", help="one service, configured by environment")
    serve.add_argument("service", choices=sorted(SERVICES))

    token = sub.add_parser("token", help="issue, list and revoke tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    issue = token_sub.add_parser("issue")
    issue.add_argument("--role", required=True)
    issue.add_argument("--subject")
    issue.add_argument("--unit")
    issue.add_argument("--window")
    issue.add_argument("--ttl", type=int)
    listing = token_sub.add_parser("list")
    listing.add_argument("--role")
    listing.add_argument("--window")
    listing.add_argument("--unit")
    revoke = token_sub.add_parser("revoke")
    revoke.add_argument("token_id")
    token_sub.add_parser("relay", help="publish token events that waited while Kafka was down")

    scoring = sub.add_parser("scoring", help="scoring's maintenance commands")
    scoring_sub = scoring.add_subparsers(dest="action", required=True)
    verify = scoring_sub.add_parser("verify", help="recompute a finalized year from its stored inputs and compare")
    verify.add_argument("year", type=int)
    scoring_sub.add_parser("rebuild", help="replay the topics into an empty read model and compare with the live one")

    demo = sub.add_parser("demo", help="generate demo activity through the running services' APIs")
    demo.add_argument("--days", type=int, default=14)
    demo.add_argument("--scale", type=float, default=1.0)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--host", default="127.0.0.1")

    migrate = sub.add_parser("migrate", help="bring services' databases to their newest migration, then exit")
    migrate.add_argument("service", choices=[*sorted(SERVICES), "all"])

    dlq = sub.add_parser("dlq", help="list a dead-letter topic's messages: headers and reason, no payloads")
    dlq.add_argument("topic", help="feedback.v1 or feedback.v1.dlq (YARDSTICK_TOPIC_PREFIX is prepended)")
    dlq.add_argument("--limit", type=_positive, default=100)

    schemas = sub.add_parser("schemas", help="write or check the event JSON Schemas")
    schemas.add_argument("action", choices=["write", "check"])
    schemas.add_argument("--dir", default="shared/schemas/events")

    args = parser.parse_args(argv)
    if args.command == "run":
        from yardstick.runner import run as run_all

        run_all(city=args.city, data_dir=args.data_dir, demo=not args.no_demo, host=args.host, days=args.days,
                scale=args.scale, seed=args.seed)
        return 0
    if args.command == "serve":
        from yardstick.runner import serve as serve_one

        serve_one(args.service)
        return 0
    if args.command == "token":
        return _token(args)
    if args.command == "schemas":
        return _schemas(args)
    if args.command == "dlq":
        return _dlq(args)
    if args.command == "migrate":
        return _migrate(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "scoring":
        # By import path: the shared package never imports a service (import-linter).
        commands = importlib.import_module("scoring.commands")
        result: int = commands.verify(args.year) if args.action == "verify" else commands.rebuild()
        return result
    return 2


if __name__ == "__main__":
    sys.exit(main())
