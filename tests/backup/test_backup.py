"""Backups and restores on real PostgreSQL: round trips, formats, manifests, version checks."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pokervod_db import backup
from pokervod_db.backup.archive import ArchiveKind, read_manifest
from pokervod_db.errors import BackupError
from pokervod_db.settings import Settings
from tests.backup.support import (
    ENTITY_AND_LINK_TABLES,
    all_rows,
    change_data,
    connect,
    fill,
    schemas,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def filled(db_settings: Settings, session, tmp_path: Path) -> Settings:
    await fill(session)
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


async def test_round_trip_restores_every_row_of_every_table(filled: Settings) -> None:
    before = all_rows(filled)
    assert all(before[t] for t in ENTITY_AND_LINK_TABLES), "every table must hold rows"

    made = backup.create_backup(filled)
    change_data(filled)
    assert all_rows(filled) != before

    result = backup.restore_backup(filled, archive=made.file)

    assert all_rows(filled) == before
    assert result.row_counts == made.row_counts
    assert result.revision == made.revision and not result.upgrade_needed
    assert result.old_schema_dropped and schemas(filled) == ["pokervod"]
    # The safety backup holds the data as it was just before the restore.
    assert result.safety_backup is not None
    assert result.safety_backup.row_counts["players"] == made.row_counts["players"] + 1


async def test_restored_schema_keeps_indexes_triggers_and_sequences(filled: Settings) -> None:
    made = backup.create_backup(filled)
    backup.restore_backup(filled, archive=made.file, safety_backup=False)
    with connect(filled) as conn:
        # The updated_at trigger and the full-text generated column work on the restored tables.
        conn.execute("UPDATE pokervod.projects SET updated_at = '2000-01-01' WHERE code = 'WSOP'")
        row = conn.execute(
            "SELECT updated_at > now() - interval '1 minute' FROM pokervod.projects "
            "WHERE code = 'WSOP'"
        ).fetchone()
        assert row == (True,)
        hits = conn.execute(
            "SELECT count(*) FROM pokervod.hand_clips WHERE notes_tsv @@ to_tsquery('english', 'ünïcödé')"
        ).fetchone()
        assert hits is not None and hits[0] >= 1
    manifest = read_manifest(made.file)
    from pokervod_db.backup.connection import maintenance_connection
    from pokervod_db.backup.content import summarize

    with maintenance_connection(filled) as conn:
        assert summarize(conn, checksums=False).objects == manifest.objects


async def test_manifest_describes_the_archive(filled: Settings) -> None:
    made = backup.create_backup(filled, tag="nightly")
    manifest = json.loads(made.manifest_file.read_text())
    assert made.file.name.startswith("pokervod_backup_") and made.file.name.endswith(".dump.zst")
    assert manifest["archive"] == made.file.name
    assert manifest["sha256"] == made.sha256 and manifest["size_bytes"] == made.file.stat().st_size
    assert manifest["revision"] == made.revision and made.revision is not None
    assert manifest["row_counts"]["hand_clip_tags"] > 0
    assert set(manifest["checksums"]) == set(manifest["row_counts"])
    assert manifest["pg_dump_version"] and manifest["server_version"]
    assert manifest["tag"] == "nightly" and manifest["duration_s"] >= 0
    assert stat.S_IMODE(made.file.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.manifest_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(made.file.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize(
    ("fmt", "compression", "kind"),
    [
        ("custom", "gzip", ArchiveKind.CUSTOM),
        ("custom", "none", ArchiveKind.CUSTOM),
        ("directory", "gzip:1", ArchiveKind.DIRECTORY),
    ],
)
async def test_every_format_verifies_and_restores(
    filled: Settings, fmt: str, compression: str, kind: ArchiveKind
) -> None:
    before = all_rows(filled)
    made = backup.create_backup(
        filled, fmt=fmt, compression=compression, jobs=2 if fmt == "directory" else 1
    )
    assert made.kind == kind.value and made.file.name.endswith(kind.suffix)
    verified = backup.verify_backup(filled, made.file)
    assert verified.ok and verified.row_counts == made.row_counts
    change_data(filled)
    backup.restore_backup(filled, archive=made.file, safety_backup=False)
    assert all_rows(filled) == before


async def test_verify_records_the_result_and_list_shows_it(filled: Settings) -> None:
    first = backup.create_backup(filled)
    second = backup.create_backup(filled)
    backup.verify_backup(filled, first.file)

    listed = backup.list_backups(filled)
    assert [b.file for b in listed] == [second.file, first.file]  # newest first
    assert [b.verified for b in listed] == [False, True]
    assert listed[1].revision == first.revision and listed[1].size_bytes == first.size_bytes
    assert backup.newest_verified(listed) is not None
    # The scratch database is gone.
    with connect(filled) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'pokervod_verify_%'"
        ).fetchone()
    assert left == (0,)


def test_backup_is_consistent_while_writers_insert(filled: Settings) -> None:
    """The manifest's counts are those of the archive's snapshot although rows are committed
    while pg_dump runs: the test holds the dump until 20 more rows have been committed."""
    stop = threading.Event()
    inserted = [0]
    committed_during_dump = threading.Semaphore(0)

    def writer() -> None:
        with connect(filled, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute(
                    "INSERT INTO pokervod.players (name, name_display) VALUES (%s, %s)",
                    (f"concurrent_{inserted[0]}", "Concurrent"),
                )
                inserted[0] += 1
                committed_during_dump.release()

    at_snapshot: list[int] = []

    def hold_the_dump(step: backup.Progress) -> None:
        if step.phase == "dump" and not at_snapshot:  # right after the snapshot was exported
            at_snapshot.append(inserted[0])
            for _ in range(20):
                assert committed_during_dump.acquire(timeout=30), "the writer stopped"

    with connect(filled) as conn:
        before = _players(conn)
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while inserted[0] < 5:  # the writer is running before the backup starts
            time.sleep(0.01)
        made = backup.create_backup(filled, progress=hold_the_dump)
    finally:
        stop.set()
        thread.join()
    with connect(filled) as conn:
        after = _players(conn)
    in_archive = made.row_counts["players"]
    assert before + 5 <= in_archive <= before + at_snapshot[0] + 1
    assert after >= in_archive + 20  # committed during the dump, not in the archive
    # verify restores the archive and compares every count and checksum with the manifest.
    assert backup.verify_backup(filled, made.file).ok


def _players(conn: Any) -> int:
    row = conn.execute("SELECT count(*) FROM pokervod.players").fetchone()
    return int(row[0])


async def test_restore_refuses_an_archive_from_a_newer_server(filled: Settings) -> None:
    made = backup.create_backup(filled)
    manifest = read_manifest(made.file)
    manifest.server_version_num = 990000
    made.manifest_file.write_text(manifest.to_json())
    before = all_rows(filled)
    with pytest.raises(BackupError, match="was taken from PostgreSQL 99"):
        backup.restore_backup(filled, archive=made.file)
    assert all_rows(filled) == before


async def test_old_pg_dump_is_refused_before_anything_runs(
    filled: Settings, pg_server, tmp_path: Path
) -> None:
    old = Path("/usr/lib/postgresql/15/bin")
    if pg_server.server_version() < 160000 or not (old / "pg_dump").exists():
        pytest.skip("needs a PostgreSQL 15 client and a newer server")
    settings = filled.model_copy(update={"pg_bin_dir": old})
    with pytest.raises(BackupError, match=r"pg_dump 15\.\d+ .* is older than the server"):
        backup.create_backup(settings)
    assert not filled.backup_dir.exists() or not any(filled.backup_dir.iterdir())


async def test_backup_of_a_database_without_schema_fails_clearly(
    empty_db_settings: Settings, tmp_path: Path
) -> None:
    settings = empty_db_settings.model_copy(update={"backup_dir": tmp_path / "b"})
    with pytest.raises(BackupError, match="has no schema pokervod"):
        backup.create_backup(settings)


def _pg15_settings(tmp_path: Path) -> tuple[Settings, str] | None:
    url = os.environ.get("POKERVOD_PG15_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            if conn.info.server_version // 10000 != 15:
                return None
            name = f"pokervod_pg15_{os.getpid()}_{tmp_path.name[-8:]}".lower()
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None
    base = Settings(_env_file=None)
    from sqlalchemy.engine import make_url

    return base.with_url(make_url(url).set(database=name)).model_copy(
        update={"backup_dir": tmp_path / "pg15"}
    ), url


async def test_backup_verify_restore_on_postgresql_15(tmp_path: Path) -> None:
    """The PostgreSQL 18 client backs up a PostgreSQL 15 server and restores into it."""
    found = _pg15_settings(tmp_path)
    if found is None:
        pytest.skip("no PostgreSQL 15 server at 127.0.0.1:5432")
    settings, admin_url = found
    from pokervod_db import migrate

    try:
        migrate.upgrade(settings)
        with connect(settings) as conn:
            conn.execute(
                "INSERT INTO pokervod.players (name, name_display) VALUES ('pg15', 'On 15')"
            )
        before = all_rows(settings)
        made = backup.create_backup(settings)
        assert read_manifest(made.file).server_version_num // 10000 == 15
        assert backup.verify_backup(settings, made.file).ok
        change_data(settings)
        backup.restore_backup(settings, archive=made.file)
        assert all_rows(settings) == before
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{settings.url().database}" WITH (FORCE)')


async def test_restore_of_an_older_revision_says_upgrade_is_needed(filled: Settings) -> None:
    from pokervod_db import migrate

    migrate.downgrade(filled, "-1")
    older = backup.create_backup(filled)
    migrate.upgrade(filled)
    result = backup.restore_backup(filled, archive=older.file, safety_backup=False)
    assert result.revision == older.revision != result.head_revision
    assert result.upgrade_needed and migrate.current(filled) == older.revision


async def test_verify_without_createdb_fails_clearly(filled: Settings, tmp_path: Path) -> None:
    if os.environ.get("POKERVOD_TEST_DATABASE_URL"):
        pytest.skip("a shared server: its roles are not ours to change")
    made = backup.create_backup(filled)
    role = f"nocreatedb_{tmp_path.name[-6:]}".lower().replace("-", "_")
    with connect(filled, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOCREATEDB")
    try:
        url = filled.url().set(username=role, password="pw")
        limited = filled.with_url(url)
        with pytest.raises(BackupError, match="needs CREATEDB"):
            backup.verify_backup(limited, made.file)
        assert not backup.list_backups(filled)[0].verified
    finally:
        with connect(filled, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
