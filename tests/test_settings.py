"""Settings: defaults, accepted URLs, and a password that never shows (repr, logs, errors)."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import text

from pokervod_db import backup
from pokervod_db.database import check_connection, create_engine
from pokervod_db.errors import DatabaseUnavailableError
from pokervod_db.settings import Settings, mask_url
from tests.conftest import ROLE_PASSWORD

SECRET = "Sup3r-s3cret-pw"
URL = f"postgresql://pokervod:{SECRET}@db.example:5432/pokervod"


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_follow_the_prd():
    s = _settings()
    assert (s.pool_size, s.max_overflow) == (10, 20)
    assert s.pool_pre_ping is True and s.echo_sql is False
    assert s.slow_query_ms == 500
    assert s.uses_embedded and s.embedded_data_dir == Path(".pokervod/pgdata")


@pytest.mark.parametrize(
    "url",
    [
        URL,
        URL.replace("postgresql://", "postgresql+asyncpg://"),
        URL.replace("postgresql://", "postgres://"),
    ],
)
def test_each_accepted_url_form_gives_asyncpg_for_the_app_and_psycopg_for_migrations(url):
    s = _settings(DATABASE_URL=url)
    assert s.async_url().drivername == "postgresql+asyncpg"
    assert s.sync_url().drivername == "postgresql+psycopg"
    assert s.libpq_url() == URL  # child processes (pg_dump) get the plain form, with password
    assert s.async_url().password == SECRET


def test_environment_and_dotenv_file_are_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / ".env").write_text(f"DATABASE_URL={URL}\nDB_POOL_SIZE=15\n")
    monkeypatch.setenv("DB_SLOW_QUERY_MS", "250")
    s = Settings()
    assert s.pool_size == 15 and s.slow_query_ms == 250
    assert s.url().host == "db.example"


def test_empty_database_url_means_the_embedded_server(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "  ")
    assert Settings(_env_file=None).uses_embedded


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"mysql://root:{SECRET}@localhost/db", "driver 'mysql'"),
        (f"sqlite:///{SECRET}.db", "driver 'sqlite'"),
        ("not a url at all", "not a database URL"),
        (f"postgresql://user:{SECRET}@host:notaport/db", "not a database URL"),
    ],
)
def test_invalid_url_is_rejected_without_echoing_it(url, reason):
    with pytest.raises(ValidationError) as info:
        _settings(DATABASE_URL=url)
    rendered = str(info.value) + repr(info.value.errors(include_input=False))
    assert reason in rendered
    assert SECRET not in rendered


def test_out_of_range_pool_size_is_rejected():
    with pytest.raises(ValidationError):
        _settings(DB_POOL_SIZE=0)


def test_repr_and_str_of_settings_mask_the_password():
    s = _settings(DATABASE_URL=URL)
    for shown in (repr(s), str(s), f"{s}", repr(s.model_dump())):
        assert SECRET not in shown
    assert "pokervod:***@db.example" in repr(s)
    assert s.masked_url() == "postgresql://pokervod:***@db.example:5432/pokervod"


def test_mask_url_hides_passwords_and_survives_garbage():
    assert mask_url(URL) == "postgresql://pokervod:***@db.example:5432/pokervod"
    assert mask_url("postgresql://nopass@h/db") == "postgresql://nopass@h/db"
    assert mask_url(f"::{SECRET}::") == "<unparseable database URL>"
    assert mask_url(f"postgresql://u:{SECRET}@h:port/db") == "<unparseable database URL>"


def test_with_url_keeps_the_other_settings():
    s = _settings(DB_POOL_SIZE=3).with_url(URL)
    assert s.pool_size == 3 and s.url().database == "pokervod"


# --- the password in logs and errors (a real server; trust auth ignores the password) --------


async def test_password_never_appears_in_echo_slow_query_or_error_logs(
    password_role, db_settings, caplog, tmp_path
):  # password_role first: its teardown drops the role after the database that has its grants
    """On a server that checks passwords: a wrong one is refused with a masked URL; with the
    right one, echo, the slow-query log, a failing statement and a backup (pg_dump gets it
    through its environment) log and record nothing of it."""
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        for grant in (
            "USAGE ON SCHEMA pokervod",
            "SELECT ON ALL TABLES IN SCHEMA pokervod",
            "SELECT ON ALL SEQUENCES IN SCHEMA pokervod",
        ):
            conn.execute(f"GRANT {grant} TO {password_role}")
    url = db_settings.url().set(username=password_role, password=ROLE_PASSWORD)
    settings = db_settings.with_url(url).model_copy(
        update={"echo_sql": True, "slow_query_ms": 0, "backup_dir": tmp_path / "backups"}
    )
    wrong = settings.with_url(url.set(password=SECRET))
    caplog.set_level(logging.DEBUG)

    refused_engine = create_engine(wrong)
    try:
        with pytest.raises(DatabaseUnavailableError) as refused:
            await check_connection(refused_engine, wait_s=10)
    finally:
        await refused_engine.dispose()
    assert "password authentication failed" in str(refused.value)
    assert ":***@" in str(refused.value)

    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            with pytest.raises(Exception, match="division by zero"):
                await conn.execute(text("SELECT 1 / 0"))
    finally:
        await engine.dispose()
    made = backup.create_backup(settings, upload=False)

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "SELECT 1" in logged  # echo and the slow-query log are on: the test sees them
    assert any(r.name == "pokervod_db.slow_query" for r in caplog.records)
    written = made.manifest_file.read_text() + str(made.to_dict())
    for secret in (SECRET, ROLE_PASSWORD):
        assert secret not in logged + str(refused.value) + repr(refused.value.__cause__)
        assert secret not in written
        assert secret not in repr(engine) and secret not in str(engine.url)
        assert secret not in repr(settings)


async def test_unreachable_server_error_names_the_masked_url_only(caplog):
    caplog.set_level(logging.DEBUG)
    settings = _settings(
        DATABASE_URL=f"postgresql://me:{SECRET}@127.0.0.1:1/db", DB_CONNECT_TIMEOUT=2
    )
    engine = create_engine(settings)
    try:
        with pytest.raises(DatabaseUnavailableError) as info:
            await check_connection(engine, wait_s=5)
    finally:
        await engine.dispose()
    message = str(info.value)
    assert message.startswith(
        "cannot connect to postgresql+asyncpg://me:***@127.0.0.1:1/db: Connection refused; "
    )
    assert "check DATABASE_URL" in message and "\n" not in message
    chain = repr(info.value.__cause__) + "".join(r.getMessage() for r in caplog.records)
    assert SECRET not in message + chain


def test_the_suite_ignores_the_callers_environment_and_dotenv() -> None:
    """conftest removed what a developer may have exported and left us in an empty directory."""
    import os
    from pathlib import Path

    for name in ("DATABASE_URL", "BACKUP_S3_BUCKET", "BACKUP_DIR", "PGPASSWORD", "AWS_PROFILE"):
        assert name not in os.environ
    assert not (Path.cwd() / ".env").exists()
    assert Settings().backup_s3_bucket is None and Settings().uses_embedded
