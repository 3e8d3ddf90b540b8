"""Settings every service shares; each service subclasses with its own env prefix."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def data_dir_default() -> Path:
    return Path(".data")


class ServiceSettings(BaseSettings):
    """What one service needs to run.

    Fields that every process must agree on (the bus, the auth secret, the city) are
    read from unprefixed variables so one environment configures a whole deployment;
    the rest carry the service's prefix, e.g. ``YARDSTICK_INTAKE_DATABASE_URL``.
    Defaults give the one-process mode: SQLite under ``.data/`` and the in-process bus.
    """

    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_SERVICE_")

    # The service's name as used in topics, consumer groups and ce_source.
    service: ClassVar[str] = "service"
    default_port: ClassVar[int] = 8000
    db_name: ClassVar[str] = "service"

    data_dir: Path = Field(
        default_factory=data_dir_default,
        validation_alias=AliasChoices("YARDSTICK_DATA_DIR", "data_dir"),
    )
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    bus: Literal["memory", "kafka"] = Field(
        default="memory", validation_alias=AliasChoices("YARDSTICK_BUS", "bus")
    )
    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
    )
    topic_partitions: int = Field(
        default=6, validation_alias=AliasChoices("YARDSTICK_TOPIC_PARTITIONS", "topic_partitions")
    )
    # Replicas of each topic the services create (a production cluster: 3, which also sets
    # min.insync.replicas=2); 1 for a single broker. Topics that exist are left as they are.
    topic_replication_factor: int = Field(
        default=1, ge=1, le=32,
        validation_alias=AliasChoices("YARDSTICK_KAFKA_REPLICATION_FACTOR", "topic_replication_factor"),
    )
    # Prepended to every topic and consumer group: lets test runs (or tenants) share a broker.
    topic_prefix: str = Field(
        default="", validation_alias=AliasChoices("YARDSTICK_TOPIC_PREFIX", "topic_prefix")
    )
    auth_secret: str = Field(
        default="", validation_alias=AliasChoices("YARDSTICK_AUTH_SECRET", "auth_secret")
    )
    # The `aud` claim tokens are issued with and must carry (docs/decisions/0006-token-audience.md).
    auth_audience: str = Field(
        default="yardstick", validation_alias=AliasChoices("YARDSTICK_AUTH_AUDIENCE", "auth_audience")
    )
    city: Path | None = Field(default=None, validation_alias=AliasChoices("YARDSTICK_CITY", "city"))
    # PostgreSQL connections of a service instance (SQLite ignores them): the pool keeps
    # db_pool_size open; up to db_max_overflow more are opened when all are busy and closed when
    # returned. Size the server for instances x (pool + overflow + 2: the relay's lock, a consumer).
    # On the 2-core bench machine 10 + 10 served kiosk batches best; 20 + 0 (no connection opened
    # per request) served bursts of single progress reports better (docs/performance.md).
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # The relay polls the outbox this often when nothing woke it up.
    relay_interval_s: float = 0.5
    # A request's events share outbox rows (decision 0013). Set it false while pods of a release
    # before 0013 may still hold the relay's lock (a rolling upgrade from it, or a rollback to it):
    # their relay reads a shared row as one event (docs/operations.md, upgrading).
    outbox_shared_rows: bool = Field(
        default=True, validation_alias=AliasChoices("YARDSTICK_OUTBOX_SHARED_ROWS", "outbox_shared_rows"))
    # Backoff for transient failures (database or broker unreachable): retried without limit.
    retry_initial_s: float = 0.2
    retry_max_s: float = 10.0
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("YARDSTICK_LOG_LEVEL", "log_level"))
    # Body limit for ordinary requests (api.md: 1 MiB).
    max_body_bytes: int = 1024 * 1024
    # Seconds a request may spend waiting for its body's bytes (408 after): a client dribbling a
    # body cannot hold a connection for long. Survey uploads (up to 64 MiB) get the longer one.
    body_timeout_s: float = 30.0
    large_body_timeout_s: float = 600.0
    # uvicorn: a request's head (line and headers) must arrive within header_timeout_s of the
    # connection opening or of its first byte; an idle keep-alive connection closes after keep_alive_s,
    # longer than clients keep idle connections (httpx 5 s, load balancers 60 s) so that a client
    # never sends on a connection the server is closing at that moment (decision 0007).
    header_timeout_s: float = 10.0
    keep_alive_s: float = 75.0

    def model_post_init(self, __context: object) -> None:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / (self.db_name + '.db')}"
        if not self.port:
            self.port = self.default_port

    def secret(self) -> str:
        """The token-signing secret: the setting, else the one `yardstick run` keeps in the data dir."""
        if self.auth_secret:
            return self.auth_secret
        path = self.data_dir / "auth-secret"
        if path.exists():
            return path.read_text().strip()
        raise RuntimeError(
            "no token secret: set YARDSTICK_AUTH_SECRET, or start `yardstick run` once so it creates "
            f"{path}"
        )


class AuthSettings(ServiceSettings):
    """The token registry used by `yardstick token` (the commission's tool)."""

    model_config = SettingsConfigDict(extra="ignore", env_prefix="YARDSTICK_AUTH_")
    service: ClassVar[str] = "auth"
    db_name: ClassVar[str] = "auth"
