"""Least-privilege roles: the app role runs the application's work, not DDL; the readonly
role reads and gets one clear line for any write. Roles are created on the embedded test
server only (a shared server's roles are not ours to change)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from pokervod_db import ingest, queries, roles
from pokervod_db.agent import DatabaseAgent
from pokervod_db.database import Database
from pokervod_db.errors import PokervodDBError
from pokervod_db.events import read_events
from pokervod_db.settings import Settings
from tests.conftest import TEST_URL_ENV


@pytest.fixture
def role_settings(db_settings: Settings, tmp_path: Path) -> Iterator[dict[str, Settings]]:
    """Settings logging in as a member of pokervod_app and of pokervod_readonly."""
    if os.environ.get(TEST_URL_ENV):
        pytest.skip("a shared server: its roles are not ours to change")
    first = _cli(db_settings, tmp_path, "roles", "setup", "--json")
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)["created"]
    assert set(created) <= {roles.APP_ROLE, roles.READONLY_ROLE}
    again = roles.setup_roles(db_settings)  # idempotent
    assert again.created == [] and again.made_nologin == []
    suffix = uuid.uuid4().hex[:8]
    logins = {"app": f"api_{suffix}", "readonly": f"reader_{suffix}"}
    groups = {"app": roles.APP_ROLE, "readonly": roles.READONLY_ROLE}
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        for kind, login in logins.items():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(
                    sql.Identifier(login), sql.Identifier(groups[kind])
                )
            )
    try:
        yield {
            kind: db_settings.with_url(db_settings.url().set(username=login))
            for kind, login in logins.items()
        }
    finally:
        with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
            for login in logins.values():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(login)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))


def _cli(settings: Settings, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=settings.libpq_url(), BACKUP_DIR=str(tmp_path / "backups"))
    return subprocess.run(
        [str(Path(sys.executable).parent / "pokervod-db"), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_failed_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: "), result.stderr
    return lines[0]


def test_app_role_runs_the_commands_of_the_application(
    role_settings: dict[str, Settings], tmp_path: Path
) -> None:
    app = role_settings["app"]
    for command in (["health"], ["status"], ["stats"], ["events"], ["upgrade", "head"]):
        result = _cli(app, tmp_path, *command)
        assert result.returncode == 0, (command, result.stderr)
    line = _one_failed_line(_cli(app, tmp_path, "downgrade"))
    assert "owner" in line or "permission denied" in line
    line = _one_failed_line(_cli(app, tmp_path, "roles", "setup"))
    assert "must run as the owner" in line


def test_app_role_follows_events(role_settings: dict[str, Settings], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATABASE_URL=role_settings["app"].libpq_url())
    follower = subprocess.Popen(
        [str(Path(sys.executable).parent / "pokervod-db"), "events", "--follow"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stderr is not None and follower.stdout is not None
        assert "following events" in follower.stderr.readline()
        with psycopg.connect(role_settings["app"].libpq_url(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock_shared(1); "
                "INSERT INTO pokervod.agent_events (event_id, type, payload, source_block, txid) "
                "VALUES (gen_random_uuid(), 'test.role', '{}', 'test', "
                "(pg_current_xact_id()::text)::bigint); "
                "NOTIFY pokervod_events"
            )
        assert '"test.role"' in follower.stdout.readline()
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(10)


async def test_app_role_queries_ingests_and_stores_agent_events(
    role_settings: dict[str, Settings],
) -> None:
    app = role_settings["app"]
    database = Database.from_settings(app)
    try:
        async with database.transaction() as session:
            result = await ingest.upsert_nas_files(
                session, [{"file_path": "/nas/a.mp4", "file_name": "a.mp4"}]
            )
            assert result.inserted == 1
            await ingest.upsert_hand_clips(
                session, [{"sheet_source": "metadata_archive", "sheet_row_number": 1}]
            )
        async with database.transaction() as session:
            page = await queries.list_hand_clips(session, limit=5)
            assert len(page.items) == 1
        with pytest.raises(PokervodDBError, match=r"owner|permission denied") as caught:
            async with database.transaction() as session:
                await session.execute(text("DROP TABLE pokervod.tags"))
        assert "\n" not in str(caught.value)
    finally:
        await database.dispose()
    agent = DatabaseAgent(app)
    try:
        stored = await agent.emit("test.agent", {"n": 1})
        assert stored.id is not None
    finally:
        await agent.close()
    assert [e.type for e in await read_events(app)] == ["test.agent"]


async def test_readonly_role_reads_and_any_write_gets_one_clear_line(
    role_settings: dict[str, Settings], tmp_path: Path
) -> None:
    reader = role_settings["readonly"]
    for command in (["status"], ["health"], ["events"]):
        assert _cli(reader, tmp_path, *command).returncode == 0, command
    database = Database.from_settings(reader)
    try:
        async with database.transaction() as session:
            assert (await queries.list_hand_clips(session, limit=5)).items == []
        with pytest.raises(ingest.IngestError) as caught:
            async with database.transaction() as session:
                await ingest.upsert_nas_files(session, [{"file_path": "/x", "file_name": "x"}])
        assert "permission denied" in str(caught.value) and "\n" not in str(caught.value)
    finally:
        await database.dispose()
