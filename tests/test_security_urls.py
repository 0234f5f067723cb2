"""Passwords never shown in any URL form; libpq options work for every driver and client program.

The test servers trust local connections, so a password in the URL is ignored by the server and
the tests can check where it would have leaked.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL

from pokervod_db import backup
from pokervod_db.database import check_connection, create_engine, create_sync_engine
from pokervod_db.errors import DatabaseUnavailableError
from pokervod_db.settings import Settings, asyncpg_options, mask_url

SECRET = "Qz9-never-show-me"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{SECRET}@db.example/pokervod",
        f"postgresql://app@db.example/pokervod?password={SECRET}",
        f"postgresql+asyncpg://app@db.example/pokervod?sslmode=require&password={SECRET}",
        f"postgresql://app:{SECRET}@db.example/pokervod?password={SECRET}&sslpassword={SECRET}",
    ],
)
def test_every_url_form_of_a_password_is_masked(url: str) -> None:
    shown = mask_url(url)
    assert SECRET not in shown
    assert "***" in shown
    settings = Settings(_env_file=None, DATABASE_URL=url)
    assert SECRET not in settings.masked_url()
    assert SECRET not in repr(settings)


def test_a_passfile_path_is_shown() -> None:
    shown = mask_url("postgresql://app@db.example/pokervod?passfile=/etc/pokervod/pgpass")
    assert "passfile=%2Fetc%2Fpokervod%2Fpgpass" in shown  # shown, URL-encoded


def test_libpq_options_are_translated_for_asyncpg() -> None:
    url = URL.create(
        "postgresql+asyncpg",
        host="db.example",
        database="pokervod",
        query={
            "sslmode": "verify-full",
            "sslrootcert": "/ca dir/root.crt",
            "target_session_attrs": "read-write",
            "application_name": "web",
            "connect_timeout": "7",
            "options": "-c statement_timeout=5000 -c search_path=pokervod",
        },
    )
    options = asyncpg_options(url)
    assert dict(options.url.query) == {}
    assert options.dsn is not None and "sslmode=verify-full" in options.dsn
    assert "sslrootcert=%2Fca%20dir%2Froot.crt" in options.dsn
    assert options.timeout == 7.0
    assert options.server_settings == {
        "application_name": "web",
        "statement_timeout": "5000",
        "search_path": "pokervod",
    }


def test_an_options_value_that_is_not_a_setting_is_refused_naming_it() -> None:
    url = URL.create("postgresql+asyncpg", host="h", query={"options": "--single -E"})
    with pytest.raises(ValueError, match="option options="):
        asyncpg_options(url)


def _with_options(settings: Settings, **query: str) -> Settings:
    return settings.with_url(settings.url().update_query_dict(query))


LIBPQ_OPTIONS = {
    "password": SECRET,
    "sslmode": "disable",
    "application_name": "pokervod-opts",
    "connect_timeout": "5",
    "options": "-c statement_timeout=4321",
    "target_session_attrs": "any",
}


async def test_libpq_options_in_the_url_work_for_the_async_and_sync_engines(
    db_settings: Settings,
) -> None:
    settings = _with_options(db_settings, **LIBPQ_OPTIONS)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
            ssl = (
                await conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert timeout == "4321ms"
    assert ssl is False
    sync = create_sync_engine(settings)
    try:
        with sync.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "4321ms"
    finally:
        sync.dispose()


def test_libpq_options_in_the_url_work_for_backup_restore_and_verify(
    db_settings: Settings, tmp_path: Path
) -> None:
    settings = _with_options(db_settings, **LIBPQ_OPTIONS).model_copy(
        update={"backup_dir": tmp_path / "b"}
    )
    made = backup.create_backup(settings)
    assert backup.verify_backup(settings, made.file).ok
    result = backup.restore_backup(settings, archive=made.file, safety_backup=False)
    assert result.row_counts == made.row_counts


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("pokervod-db")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "command", [("status",), ("status", "--json"), ("health",), ("health", "--json")]
)
def test_status_and_health_never_print_a_query_password(
    cli_env: dict[str, str], db_settings: Settings, command: tuple[str, ...]
) -> None:
    url = _with_options(db_settings, password=SECRET, sslmode="disable").libpq_url()
    run = _cli({**cli_env, "DATABASE_URL": url}, *command)
    assert run.returncode == 0, run.stderr
    assert SECRET not in run.stdout + run.stderr
    if "--json" in command:
        json.loads(run.stdout)


@pytest.mark.parametrize("command", [("status",), ("health", "--json"), ("backup",)])
def test_connection_errors_never_print_a_query_password(
    cli_env: dict[str, str], command: tuple[str, ...]
) -> None:
    env = {
        **cli_env,
        "DATABASE_URL": f"postgresql://u@127.0.0.1:1/x?password={SECRET}&sslmode=disable",
        "DB_CONNECT_TIMEOUT": "2",
    }
    run = _cli(env, *command)
    assert run.returncode == 1
    assert SECRET not in run.stdout + run.stderr
    assert "Traceback" not in run.stderr


async def test_unreachable_server_error_hides_a_query_password() -> None:
    settings = Settings(
        _env_file=None,
        DATABASE_URL=f"postgresql://me@127.0.0.1:1/db?password={SECRET}&sslmode=disable",
        DB_CONNECT_TIMEOUT=2,
    )
    engine = create_engine(settings)
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            await check_connection(engine, wait_s=5)
    finally:
        await engine.dispose()
    assert SECRET not in str(info.value)
    assert "cannot connect to" in str(info.value)


async def test_echo_logs_statements_without_parameter_values_on_both_engines(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    settings = db_settings.model_copy(update={"echo_sql": True})
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT :v AS async_marker"), {"v": SECRET})
    finally:
        await engine.dispose()
    sync = create_sync_engine(settings)
    try:
        with sync.connect() as conn:
            conn.execute(text("SELECT :v AS sync_marker"), {"v": SECRET})
    finally:
        sync.dispose()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "async_marker" in logged and "sync_marker" in logged  # echo is on
    assert SECRET not in logged
