"""Helpers shared by the backup tests: filling a database, reading every row, child runners."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db.settings import SCHEMA, Settings

ENTITY_AND_LINK_TABLES = (
    "projects",
    "seasons",
    "events",
    "episodes",
    "video_files",
    "hand_clips",
    "tags",
    "players",
    "google_sheet_sync",
    "nas_folders",
    "nas_files",
    "hand_clip_tags",
    "hand_clip_players",
)


async def fill(session: AsyncSession) -> None:
    """The sample catalog plus factory rows with awkward values (quotes, tabs, newlines, NULLs)."""
    from pokervod_db.sample import load_sample
    from tests import factories

    await load_sample(session)
    awkward = "tab\there, newline\nhere, back\\slash, quote ' \" and ünïcödé ♠♥"
    clip = factories.HandClipFactory(
        notes=awkward,
        title="COPY \\. end marker?",
        winner_hand=None,
        sheet_row_number=10_000,
        video_file__file_name="awkward clip.mp4",
    )
    clip.tags.append(factories.TagFactory(name_display=awkward))
    clip.players.append(factories.PlayerFactory(nationality=None))
    factories.NASFileFactory(file_name="weird\nname.mp4")
    factories.GoogleSheetSyncFactory()
    await session.commit()


def connect(settings: Settings, **kwargs: Any) -> psycopg.Connection:
    return psycopg.connect(settings.libpq_url(), **kwargs)


# Rows a restore writes anew rather than copying (fresh random versions, 007_catalog_versions).
DERIVED_TABLES = frozenset({"catalog_versions"})


def all_rows(settings: Settings, tables: tuple[str, ...] | None = None) -> dict[str, list[str]]:
    """Every row of every table of the schema but the derived ones, as text, in a stable order."""
    with connect(settings) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        names = tables or tuple(
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (SCHEMA,)
            )
            if r[0] not in DERIVED_TABLES
        )
        return {
            name: [r[0] for r in conn.execute(f"SELECT t::text FROM {SCHEMA}.{name} t ORDER BY 1")]
            for name in names
        }


def schemas(settings: Settings) -> list[str]:
    with connect(settings) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pokervod%' ORDER BY 1"
            )
        ]


def change_data(settings: Settings) -> None:
    """Make the live data differ from a backup: a row deleted, one added, one changed."""
    with connect(settings) as conn:
        conn.execute(
            f"DELETE FROM {SCHEMA}.hand_clip_tags WHERE ctid IN (SELECT ctid FROM {SCHEMA}.hand_clip_tags LIMIT 1)"
        )
        conn.execute(
            f"INSERT INTO {SCHEMA}.players (name, name_display) VALUES ('added_later', 'Added Later')"
        )
        conn.execute(f"UPDATE {SCHEMA}.projects SET name = name || ' (changed)'")


RUNNER = r"""
import os, sys, time, json
from pathlib import Path
from pokervod_db.settings import Settings
from pokervod_db import backup

action, pause_phase, pause_at, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
settings = Settings(_env_file=None)

def progress(step):
    if step.phase == pause_phase and step.tables_done >= pause_at:
        Path(marker).write_text(step.phase)
        time.sleep(3600)

if action == "backup":
    result = backup.create_backup(settings, progress=progress)
else:
    result = backup.restore_backup(settings, archive=Path(sys.argv[5]), progress=progress)
print(json.dumps(result.to_dict(), default=str))
"""


def start_paused(
    env: dict[str, str],
    action: str,
    *,
    phase: str,
    at: int,
    marker: Path,
    archive: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Run a backup or restore in a child that blocks in its progress callback at ``phase``."""
    argv = [sys.executable, "-c", RUNNER, action, phase, str(at), str(marker)]
    if archive is not None:
        argv.append(str(archive))
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(marker: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if process.poll() is not None:
            _out, err = process.communicate()
            raise AssertionError(f"child ended before the pause: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("child did not reach the pause")
        time.sleep(0.05)


def wait_no_clients(settings: Settings, timeout: float = 15.0) -> None:
    """Wait until no backup or restore session is connected (our children die with us)."""
    deadline = time.monotonic() + timeout
    with connect(settings, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE "
                "'pokervod-db backup%' OR application_name LIKE 'pokervod-db restore%'"
            ).fetchone()
            if row is not None and row[0] == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{row[0] if row else '?'} backup/restore sessions remain")
            time.sleep(0.1)


def env_for(settings: Settings, backup_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL"}}
    env["DATABASE_URL"] = settings.libpq_url()
    env["BACKUP_DIR"] = str(backup_dir)
    return env
