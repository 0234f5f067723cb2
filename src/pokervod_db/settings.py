"""Settings of the database layer, read from the environment and a `.env` file.

There is no global instance: callers build `Settings()` (or pass values) and hand it to the
factories in `database.py`, so tests and the CLI never fight over one shared object.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from pokervod_db.errors import ConfigurationError

SCHEMA = "pokervod"
"""The PostgreSQL schema that holds every table of the archive (and Alembic's version table)."""

_SYNC_DRIVER = "postgresql+psycopg"
_ASYNC_DRIVER = "postgresql+asyncpg"
_ACCEPTED_DRIVERS = {"postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg"}


def mask_url(url: str | URL) -> str:
    """Render a database URL for humans: the password, if any, is replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        return "<unparseable database URL>"
    secret = {k: "***" for k in parsed.query if k.lower() in _SECRET_QUERY_KEYS}
    if secret:  # ?password=… is as secret as the user part (libpq accepts both)
        parsed = parsed.update_query_dict(secret)
    return parsed.render_as_string(hide_password=True).replace("%2A%2A%2A", "***")


_SECRET_QUERY_KEYS = {"password", "sslpassword"}

# libpq connection options users put in URLs. psycopg, pg_dump and pg_restore read them natively
# (libpq); asyncpg gets them translated by `asyncpg_options`, the one place that knows how.
_ASYNCPG_DSN_OPTIONS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcrl",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "target_session_attrs",
    "passfile",
    "krbsrvname",
    "gsslib",
}
_OPTIONS_SETTING = re.compile(r"^(?:-c|--)?(?P<name>[A-Za-z_][A-Za-z0-9_.]*)=(?P<value>.*)$")


@dataclass(frozen=True)
class AsyncpgOptions:
    """The libpq options of a URL as asyncpg takes them."""

    url: URL  # the URL without the options below
    dsn: str | None  # "postgresql://?sslmode=…": asyncpg reads its TLS options from a DSN
    timeout: float | None
    server_settings: dict[str, str]


def libpq_url(url: URL) -> str:
    """``url`` as a plain ``postgresql://`` URL that libpq (psycopg, pg_dump, psql) reads whole.

    The one conversion from a SQLAlchemy URL to libpq's terms, every query option included
    (``host`` of a socket directory, ``sslmode``, ``options``…). It contains the password: pass
    it only to a connection or a child process, never print it.
    """
    plain = url.set(drivername="postgresql")
    base = plain.set(query={}).render_as_string(hide_password=False)
    # libpq percent-decodes query values but reads "+" literally, and SQLAlchemy renders a
    # space as "+": spell the query out ourselves ("options=-c%20statement_timeout%3D…").
    pairs = [
        f"{quote(key, safe='')}={quote(value, safe='')}"
        for key, values in plain.query.items()
        for value in ((values,) if isinstance(values, str) else values)
    ]
    return base + ("?" + "&".join(pairs) if pairs else "")


def asyncpg_options(url: URL) -> AsyncpgOptions:
    """Split the libpq options out of ``url`` for asyncpg, or refuse one in a clear line.

    asyncpg would pass ``sslmode`` and friends to ``connect()`` as unknown keywords (TypeError)
    and send ``connect_timeout`` or ``options`` to the server as settings it does not know.
    """
    dsn: dict[str, str] = {}
    server_settings: dict[str, str] = {}
    timeout: float | None = None
    rest: dict[str, str | tuple[str, ...]] = {}
    for key, value in url.query.items():
        single = value if isinstance(value, str) else (value[-1] if value else "")
        if key in _ASYNCPG_DSN_OPTIONS:
            dsn[key] = single
        elif key == "connect_timeout":
            try:
                timeout = float(single)
            except ValueError:
                raise ValueError(
                    f"DATABASE_URL option connect_timeout={single!r} is not a number of seconds"
                ) from None
        elif key == "application_name":
            server_settings["application_name"] = single
        elif key == "options":
            for word in shlex.split(single):
                if word == "-c":
                    continue
                match = _OPTIONS_SETTING.match(word)
                if match is None:
                    raise ValueError(
                        f"DATABASE_URL option options={single!r} is not understood: only "
                        "'-c name=value' settings are supported"
                    )
                server_settings[match["name"]] = match["value"]
        else:
            rest[key] = value
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in sorted(dsn.items()))
    return AsyncpgOptions(
        url=url.set(query=rest),
        dsn=f"postgresql://?{query}" if dsn else None,
        timeout=timeout,
        server_settings=server_settings,
    )


def _parse(raw: str) -> URL:
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError) as exc:
        raise ValueError(
            f"DATABASE_URL is not a database URL ({mask_url(raw)}); "
            "expected postgresql://user:password@host:5432/dbname"
        ) from exc
    if url.drivername not in _ACCEPTED_DRIVERS:
        raise ValueError(
            f"DATABASE_URL uses driver {url.drivername!r}; pokervod-db needs PostgreSQL "
            "(postgresql:// or postgresql+asyncpg://)"
        )
    return url


class Settings(BaseSettings):
    """Everything the database layer can be configured with.

    ``DATABASE_URL`` may use ``postgresql://`` or ``postgresql+asyncpg://``; the layer derives
    the asyncpg URL for the application and the psycopg URL for Alembic and maintenance work.
    When it is unset, an embedded PostgreSQL server with its data in ``embedded_data_dir`` is used.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # A rejected DATABASE_URL must not be echoed back (with its password) in the error.
        hide_input_in_errors=True,
    )

    database_url: SecretStr | None = Field(default=None, alias="DATABASE_URL")
    # Behind PgBouncer in transaction mode (DB_PGBOUNCER=true): the application's connections
    # keep no session state and no server-side prepared statements; work that needs a real
    # session (migrations, backup/restore, the maintenance lock, LISTEN) goes to
    # DATABASE_DIRECT_URL (the server itself) when set.
    pgbouncer: bool = Field(default=False, alias="DB_PGBOUNCER")
    database_direct_url: SecretStr | None = Field(default=None, alias="DATABASE_DIRECT_URL")
    pool_size: int = Field(default=10, ge=1, le=100, alias="DB_POOL_SIZE")
    max_overflow: int = Field(default=20, ge=0, le=100, alias="DB_MAX_OVERFLOW")
    pool_timeout: float = Field(default=30.0, gt=0, alias="DB_POOL_TIMEOUT")
    pool_pre_ping: bool = Field(default=True, alias="DB_POOL_PRE_PING")
    # A connection back from a request less than this long ago is handed out unchecked: the
    # ping (three round trips through the asyncpg adapter) would cost more than most reads.
    pool_pre_ping_idle_s: float = Field(default=1.0, ge=0, alias="DB_POOL_PRE_PING_IDLE_S")
    connect_timeout: float = Field(default=5.0, gt=0, alias="DB_CONNECT_TIMEOUT")
    echo_sql: bool = Field(default=False, alias="DB_ECHO")
    slow_query_ms: float = Field(default=500.0, ge=0, alias="DB_SLOW_QUERY_MS")
    embedded_data_dir: Path = Field(default=Path(".pokervod/pgdata"), alias="EMBEDDED_DATA_DIR")
    embedded_database: str = Field(default="pokervod", alias="EMBEDDED_DATABASE")
    migration_lock_timeout_s: float = Field(default=300.0, ge=0, alias="MIGRATION_LOCK_TIMEOUT_S")
    statement_lock_timeout_ms: int = Field(default=10_000, ge=0, alias="DB_LOCK_TIMEOUT_MS")
    # Application connections only (create_engine); migrations, backup and restore run without
    # them and bound their waits with their own lock timeouts. 0 turns a limit off.
    statement_timeout_ms: int = Field(default=30_000, ge=0, alias="DB_STATEMENT_TIMEOUT_MS")
    idle_in_transaction_timeout_ms: int = Field(
        default=60_000, ge=0, alias="DB_IDLE_IN_TRANSACTION_TIMEOUT_MS"
    )
    backup_dir: Path = Field(default=Path("backups"), alias="BACKUP_DIR")
    # Backup and restore (pokervod_db.backup). The lock wait bounds how long a backup or restore
    # queues behind a migration (or the other way round) before failing with one clear line.
    backup_lock_timeout_s: float = Field(default=60.0, ge=0, alias="BACKUP_LOCK_TIMEOUT_S")
    backup_compression: str = Field(default="zstd", alias="BACKUP_COMPRESSION")
    backup_max_verified_age_h: float = Field(default=48.0, gt=0, alias="BACKUP_MAX_VERIFIED_AGE_H")
    pg_bin_dir: Path | None = Field(default=None, alias="PG_BIN_DIR")
    backup_s3_bucket: str | None = Field(default=None, alias="BACKUP_S3_BUCKET")
    backup_s3_prefix: str = Field(default="pokervod/", alias="BACKUP_S3_PREFIX")
    backup_s3_endpoint_url: str | None = Field(default=None, alias="BACKUP_S3_ENDPOINT_URL")
    backup_s3_region: str | None = Field(default=None, alias="BACKUP_S3_REGION")
    # Streaming replicas and continuous archiving (pokervod_db.replicas, backup.physical).
    # Replica URLs may hold passwords, hence a secret; reads go there only within the lag bound.
    replica_urls: SecretStr | None = Field(default=None, alias="DATABASE_REPLICA_URLS")
    replica_max_lag_s: float = Field(default=10.0, ge=0, alias="DB_REPLICA_MAX_LAG_S")
    backup_wal: bool = Field(default=False, alias="BACKUP_WAL")
    # archive_timeout of the embedded server: a WAL segment is archived at least this often
    # when there are writes, so at most about this many seconds of commits are at risk.
    wal_archive_timeout_s: int = Field(default=60, ge=1, le=3600, alias="WAL_ARCHIVE_TIMEOUT_S")

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_direct_url", mode="before")
    @classmethod
    def _empty_direct_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url", "database_direct_url")
    @classmethod
    def _valid_postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _parse(value.get_secret_value())
        return value

    @field_validator("replica_urls", mode="before")
    @classmethod
    def _empty_replicas_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("replica_urls")
    @classmethod
    def _valid_replica_urls(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for part in value.get_secret_value().split(","):
                if part.strip():
                    _parse(part.strip())
        return value

    def replica_url_list(self) -> list[URL]:
        """The replicas of ``DATABASE_REPLICA_URLS`` in order (driver not normalised)."""
        if self.replica_urls is None:
            return []
        parts = self.replica_urls.get_secret_value().split(",")
        return [_parse(p.strip()) for p in parts if p.strip()]

    @property
    def uses_embedded(self) -> bool:
        """True when no ``DATABASE_URL`` is configured and the embedded server is used."""
        return self.database_url is None

    def url(self) -> URL:
        """The configured URL as given (driver not normalised). Needs ``DATABASE_URL``."""
        if self.database_url is None:
            raise ValueError("no DATABASE_URL configured; start the embedded server first")
        return _parse(self.database_url.get_secret_value())

    def async_url(self) -> URL:
        """URL for the application's async engine (asyncpg)."""
        return self.url().set(drivername=_ASYNC_DRIVER)

    def sync_url(self) -> URL:
        """URL for Alembic and maintenance connections (psycopg 3)."""
        return self.url().set(drivername=_SYNC_DRIVER)

    def libpq_url(self) -> str:
        """A plain ``postgresql://`` URL for libpq tools (pg_dump, pg_restore, psql).

        It contains the password: pass it only to child processes, never print it.
        """
        return libpq_url(self.url())

    def masked_url(self) -> str:
        """The URL with its password hidden, for logs and messages."""
        if self.database_url is None:
            return f"embedded PostgreSQL in {self.embedded_data_dir}"
        return mask_url(self.database_url.get_secret_value())

    def direct(self) -> Settings:
        """Settings for work that needs a real server session (migrations, backup and restore,
        the maintenance lock, LISTEN): ``DATABASE_DIRECT_URL`` when set, else these."""
        if self.database_direct_url is None:
            return self
        return self.model_copy(
            update={"database_url": self.database_direct_url, "pgbouncer": False}
        )

    def with_url(self, url: str | URL) -> Settings:
        """A copy of these settings pointing at another URL (used by the embedded server and tests)."""
        text = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        return self.model_copy(update={"database_url": SecretStr(text)})

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        # SecretStr already hides the URL; this keeps repr() readable as well as safe.
        for name, value in super().__repr_args__():
            if name == "database_url" and value is not None:
                yield name, self.masked_url()
            else:
                yield name, value


def load_settings(**values: object) -> Settings:
    """`Settings` from the environment and ``.env`` (``values`` override them), or one
    `ConfigurationError` naming the first invalid setting, without echoing its value."""
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        reason = first["msg"].removeprefix("Value error, ")
        if where not in reason:
            reason = f"{where}: {reason}"
        raise ConfigurationError(f"invalid settings: {reason}", reason=reason) from exc
