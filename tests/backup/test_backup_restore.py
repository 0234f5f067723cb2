"""Restores that must not happen, and restores under load: nothing changes unless all succeeds."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pokervod_db import backup
from pokervod_db.backup.archive import read_manifest
from pokervod_db.backup.tools import find_tools
from pokervod_db.errors import BackupError
from pokervod_db.settings import Settings
from tests.backup.support import all_rows, change_data, connect, fill, schemas

pytestmark = pytest.mark.slow


@pytest.fixture
async def filled(db_settings: Settings, session, tmp_path: Path) -> Settings:
    await fill(session)
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


@pytest.fixture
def good(filled: Settings) -> backup.BackupResult:
    made = backup.create_backup(filled)
    change_data(filled)  # the live data now differs from the archive
    return made


def _copy_with_manifest(made: backup.BackupResult, dest_dir: Path, name: str) -> Path:
    """A copy of the archive under another name, with its manifest beside it."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / name
    shutil.copy(made.file, target)
    shutil.copy(made.manifest_file, dest_dir / f"{name}.manifest.json")
    return target


def _rewrite_manifest(archive: Path, **changes: object) -> None:
    manifest = read_manifest(archive)
    for key, value in changes.items():
        setattr(manifest, key, value)
    (archive.parent / f"{archive.name}.manifest.json").write_text(manifest.to_json())


def _refused(settings: Settings, archive: Path, message: str) -> None:
    before = all_rows(settings)
    files_before = sorted(p.name for p in settings.backup_dir.iterdir())
    with pytest.raises(BackupError, match=message):
        backup.restore_backup(settings, archive=archive)
    assert all_rows(settings) == before, "the data changed"
    assert sorted(p.name for p in settings.backup_dir.iterdir()) == files_before, (
        "a safety backup was taken although the archive was refused"
    )
    assert schemas(settings) == ["pokervod"]


def test_missing_file_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    _refused(filled, tmp_path / "nope.dump", "does not exist")


def test_empty_file_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    _refused(filled, empty, "is empty")


def test_random_bytes_are_refused(filled: Settings, good, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(os.urandom(100_000))
    _refused(filled, junk, "not a pg_dump archive")


def test_truncated_archive_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    cut = _copy_with_manifest(good, tmp_path / "cut", "cut.dump.zst")
    with cut.open("r+b") as f:
        f.truncate(cut.stat().st_size // 2)
    _refused(filled, cut, "truncated or was changed")


@pytest.mark.parametrize("keep", [0.3, 0.97])
def test_truncated_archive_with_a_matching_manifest_is_refused(
    filled: Settings, good, tmp_path: Path, keep: float
) -> None:
    """Even a manifest forged to fit the cut file does not get it restored, wherever the cut is."""
    cut = _copy_with_manifest(good, tmp_path / "cut", "cut.dump.zst")
    with cut.open("r+b") as f:
        f.truncate(int(cut.stat().st_size * keep))
    digest = hashlib.sha256(cut.read_bytes()).hexdigest()
    _rewrite_manifest(cut, size_bytes=cut.stat().st_size, sha256=digest)
    _refused(filled, cut, "truncated|not a readable pg_dump archive")


def test_checksum_mismatch_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    copy = _copy_with_manifest(good, tmp_path / "bad", "bad.dump.zst")
    _rewrite_manifest(copy, sha256="0" * 64)
    _refused(filled, copy, "does not match its manifest's sha256")


def test_missing_manifest_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    lonely = tmp_path / "lonely.dump.zst"
    shutil.copy(good.file, lonely)
    _refused(filled, lonely, "has no manifest")


def test_unknown_revision_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    copy = _copy_with_manifest(good, tmp_path / "future", "future.dump.zst")
    _rewrite_manifest(copy, revision="999_from_the_future")
    _refused(filled, copy, "revision 999_from_the_future, which this version")


def test_archive_of_another_schema_is_refused(filled: Settings, good, tmp_path: Path) -> None:
    with connect(filled) as conn:
        conn.execute(
            "CREATE SCHEMA other; CREATE TABLE other.t (id int); INSERT INTO other.t VALUES (1)"
        )
    tools = find_tools(filled)
    foreign = tmp_path / "foreign.dump"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = filled.url().password or ""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params: dict[str, Any] = conninfo_to_dict(filled.libpq_url())
    params.pop("password", None)
    subprocess.run(
        [
            tools.path("pg_dump"),
            "-Fc",
            "--schema",
            "other",
            "-f",
            str(foreign),
            "-d",
            make_conninfo(**params),
        ],
        env=env,
        check=True,
    )
    digest = hashlib.sha256(foreign.read_bytes()).hexdigest()
    manifest = read_manifest(good.file)
    manifest.kind = backup.ArchiveKind.CUSTOM
    manifest.sha256, manifest.size_bytes = digest, foreign.stat().st_size
    (tmp_path / "foreign.dump.manifest.json").write_text(manifest.to_json())
    _refused(filled, foreign, "does not contain schema pokervod")


def test_failed_check_inside_the_transaction_rolls_everything_back(
    filled: Settings, good, tmp_path: Path
) -> None:
    """The archive loads fine but disagrees with its manifest: the server refuses the commit."""
    copy = _copy_with_manifest(good, tmp_path / "lying", "lying.dump.zst")
    manifest = read_manifest(copy)
    _rewrite_manifest(copy, row_counts=manifest.row_counts | {"projects": 4242})
    before = all_rows(filled)
    with pytest.raises(BackupError, match=r"table projects has \d+ rows, the manifest says 4242"):
        backup.restore_backup(filled, archive=copy, safety_backup=False)
    assert all_rows(filled) == before
    assert schemas(filled) == ["pokervod"]
    # And the real archive still restores afterwards (no lock or half-state left behind).
    backup.restore_backup(filled, archive=good.file, safety_backup=False)


def test_restore_while_another_connection_reads(filled: Settings, good) -> None:
    """Readers see complete old or complete new data, never an empty or half-loaded schema."""
    old_projects = all_rows(filled, ("projects",))["projects"]
    new_count = good.row_counts["players"]
    old_count = new_count + 1  # change_data added one player
    seen: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            with connect(filled, autocommit=True) as conn:
                while not stop.is_set():
                    row = conn.execute("SELECT count(*) FROM pokervod.players").fetchone()
                    assert row is not None
                    seen.append(row[0])
        except BaseException as exc:
            errors.append(exc)

    # A long transaction that read the old table keeps reading it undisturbed.
    long_reader = connect(filled)
    long_reader.execute("SELECT count(*) FROM pokervod.projects").fetchone()
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        settings = filled.model_copy(update={"statement_lock_timeout_ms": 300})
        result = backup.restore_backup(settings, archive=good.file, safety_backup=False)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert set(seen) <= {old_count, new_count} and seen[-1] == new_count
    # The long reader's transaction goes on working (its next statement sees the new tables).
    assert long_reader.execute("SELECT count(*) FROM pokervod.projects").fetchone() == (
        len(old_projects),
    )
    # The old schema is still locked by the long reader: it is kept aside, not waited for.
    assert not result.old_schema_dropped and result.old_schema in schemas(filled)
    long_reader.close()
    # The next restore drops the leftover.
    backup.restore_backup(filled, archive=good.file, safety_backup=False)
    assert schemas(filled) == ["pokervod"]
