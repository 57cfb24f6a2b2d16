"""Configuration: environment variables prefixed ``TELECARE_`` (and an optional ``.env``), checked at start-up.

Documented option by option in ``docs/configuration.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.notify.pushover import DEFAULT_BASE_URL

MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}


class ConfigError(Exception):
    """Raised at start-up when a setting is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELECARE_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the embedded stores live by default")
    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://user:pass@host:port, mqtts:// for TLS")
    mqtt_client_id: str = Field(
        "telecare-gateway", description="Fixed, so the broker keeps our session (shipped Mosquitto: the user)")
    mqtt_ca_file: Path | None = Field(None, description="CA certificate for mqtts:// (default: the system's)")
    mqtt_topic_root: str = "telecare"
    mqtt_protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT 5; 3.1.1 for brokers without it")
    mqtt_session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="How long the broker keeps our queue")
    clock: Literal["wall", "simulated"] = Field(
        "wall", description="simulated: follow the simulator's clock topic (accelerated simulations only)")
    influx_url: str | None = None
    influx_token: SecretStr | None = None
    influx_org: str | None = None
    influx_bucket: str | None = None
    influx_timeout_s: float = Field(10.0, gt=0)
    pushover_url: str = Field(DEFAULT_BASE_URL, description="Pushover's API, or a compatible one")
    pushover_token: SecretStr | None = Field(None, description="the Pushover application token")
    pushover_timeout_s: float = Field(10.0, gt=0)
    delivery_deadline_urgent_s: int = Field(
        900, ge=60, description="How long a high or emergency priority message is retried before the chain moves on")
    delivery_deadline_s: int = Field(4 * 3600, ge=60, description="How long any other message is retried")
    delivery_concurrency: int = Field(4, ge=1, le=32, description="Messages sent at once (one per recipient)")
    # The watchdog (gateway.watchdog): operators told out of band when the safety path falls behind.
    operator_pushover_user: str | None = Field(
        None, description="Pushover user or group key of the operators, told when the gateway falls behind")
    healthcheck_url: str | None = Field(
        None, description="Pinged every minute (GET url, or url/fail when something is wrong): a dead man's switch")
    watchdog_min_free_gib: float = Field(2.0, ge=0, description="Less free disk than this is an operators' alarm")
    watchdog_lag_s: float = Field(300.0, gt=0, description="Journal or dispatcher this far behind: an alarm")
    db_url: str | None = Field(None, description="Operational database; default a SQLite file in data_dir")
    spool_dir: Path | None = Field(None, description="The journal (durable hand-off and spool); default data_dir")
    spool_max_entries: int = Field(5_000_000, ge=1000, description="Past this, the gateway stops acknowledging")
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = Field("127.0.0.1", description="Where /metrics listens: loopback unless a scraper elsewhere "
                              "needs it (then a firewall or a proxy with authentication in front)")
    max_payload_bytes: int = Field(64 * 1024, ge=256)
    max_future_s: int = Field(300, ge=0, description="How far ahead of the clock an event time may be")
    batch_max: int = Field(5000, ge=1, description="Most messages committed to the journal at once")
    linger_ms: int = Field(20, ge=0, description="How long a batch waits to fill before committing")
    # Per-home quotas (gateway.quotas): what one hub can make the gateway keep. Past one, the excess is refused.
    quota_devices_per_home: int = Field(200, ge=1, description="Most device names kept per home")
    quota_new_devices_per_hour: int = Field(50, ge=1, description="Most new device names taken per home per hour")
    quota_dead_letters_per_hour: int = Field(100, ge=0, description="Most dead letters kept per home per hour")
    dead_letter_max_age_days: float = Field(14.0, gt=0, description="Older dead letters are deleted")
    dead_letter_max_rows: int = Field(100_000, ge=1, description="Past this, the oldest dead letters are deleted")
    dead_letter_max_per_home: int = Field(10_000, ge=1, description="Past this, a home's oldest are deleted")
    # Cluster mode (docs/scale-out.md): the durable hand-off is NATS JetStream instead of the local journal.
    nats_url: str | None = Field(
        None, description="Cluster mode: comma-separated nats:// URLs of the NATS servers (unset: one machine)")
    nats_partitions: int = Field(16, ge=1, le=1024, description="Partitions of the hub messages, as the NATS "
                                 "servers' mapping partition(N,1) has them: every worker and server the same")

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in MQTT_SCHEMES or not parts.hostname:
            raise ValueError("must look like mqtt://user:pass@host:1883 (or mqtts:// for TLS)")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as e:
            raise ValueError(f"bad port: {e}") from None
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        for url in value.split(","):
            parts = urlsplit(url.strip())
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                raise ValueError(f"{url.strip()!r} is not a NATS server URL: give comma-separated "
                                 "nats://user:password@host:4222 (tls:// for TLS)")
        return value

    @property
    def nats_servers(self) -> list[str]:
        """The NATS servers' URLs (empty: single-machine mode)."""
        return [url.strip() for url in (self.nats_url or "").split(",") if url.strip()]

    @field_validator("pushover_url")
    @classmethod
    def _pushover_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
            raise ValueError("must be an http(s):// URL, e.g. https://api.pushover.net/1/")
        return value

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL of an InfluxDB 2.x server")
        return value or None

    @model_validator(mode="after")
    def _influx_complete(self) -> Self:
        if self.influx_url:
            missing = [f"TELECARE_INFLUX_{n.upper()}" for n in ("token", "org", "bucket")
                       if not getattr(self, f"influx_{n}")]
            if missing:
                raise ValueError(f"TELECARE_INFLUX_URL is set, so {', '.join(missing)} must be set too")
        return self

    @model_validator(mode="after")
    def _storage_usable(self) -> Self:
        """The database URL and the directories the commands write are checked before anything opens them, so a
        mistake is a sentence naming the variable, not a driver's traceback later (docs/configuration.md)."""
        from gateway.db.session import DatabaseUrlError, check_database_url, directory_problem

        try:
            check_database_url(self.database_url)
        except DatabaseUrlError as e:
            raise ValueError(f"{'TELECARE_DB_URL' if self.db_url else 'TELECARE_DATA_DIR'}: {e}") from None
        # data_dir holds the default database, journal and readings store: checked unless all three are elsewhere.
        if self.db_url is None or self.spool_dir is None or self.influx_url is None:
            problem = directory_problem(self.data_dir)
            if problem:
                raise ValueError(f"TELECARE_DATA_DIR: {problem}; set it to a directory telecare can write")
        problem = directory_problem(self.spool_dir) if self.spool_dir is not None else None
        if problem:
            raise ValueError(f"TELECARE_SPOOL_DIR: {problem}; set it to a directory telecare can write")
        return self

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'telecare.db'}"

    @property
    def journal_path(self) -> Path:
        return (self.spool_dir or self.data_dir) / "journal.sqlite3"

    @property
    def worker_metrics_path(self) -> Path:
        return (self.spool_dir or self.data_dir) / "worker.prom"

    @property
    def embedded_readings_path(self) -> Path:
        return self.data_dir / "readings.sqlite3"


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with a message naming each wrong variable instead of a traceback."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        lines = []
        for err in e.errors():
            message = err["msg"].removeprefix("Value error, ")
            # A check across settings names its variables itself.
            lines.append(f"TELECARE_{'_'.join(str(p) for p in err['loc']).upper()}: {message}" if err["loc"]
                         else message)
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
