"""Timing of the operations: migration as a whole process, backup and restore, sizes, settings."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pokervod_db import embedded
from pokervod_db.settings import Settings

PG_SETTINGS = [
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "effective_cache_size",
    "max_wal_size",
    "random_page_cost",
    "jit",
    "max_parallel_workers_per_gather",
    "max_parallel_maintenance_workers",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "temp_buffers",
    "default_statistics_target",
]


def conninfo(settings: Settings, database: str | None = None) -> str:
    """A libpq URL for psycopg and the command-line tools (password included: never print)."""
    url = settings.url().set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


def _admin(settings: Settings) -> psycopg.Connection:
    return psycopg.connect(conninfo(settings, "postgres"), autocommit=True)


def recreate_database(settings: Settings, name: str) -> None:
    with _admin(settings) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(settings: Settings, name: str) -> None:
    with _admin(settings) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def server_facts(settings: Settings) -> dict[str, Any]:
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        version = conn.execute("SELECT version()").fetchone()
        values = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in PG_SETTINGS}  # type: ignore[index]
        size = conn.execute(
            "SELECT pg_database_size(current_database()), "
            "pg_size_pretty(pg_database_size(current_database()))"
        ).fetchone()
        tables = conn.execute(
            """
            SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid),
                   pg_indexes_size(c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'pokervod' AND c.relkind = 'r'
            ORDER BY 2 DESC
            """
        ).fetchall()
    assert version is not None and size is not None
    return {
        "version": version[0],
        "settings": values,
        "database_size_bytes": size[0],
        "database_size": size[1],
        "tables": {
            name: {"total_bytes": total, "heap_bytes": heap, "index_bytes": idx}
            for name, total, heap, idx in tables
        },
    }


def time_migration(settings: Settings, base_name: str, *, repeats: int = 3) -> dict[str, Any]:
    """``pokervod-db upgrade head`` on an empty database, timed as a whole process."""
    cli = Path(sys.executable).with_name("pokervod-db")
    command = [str(cli)] if cli.exists() else [sys.executable, "-m", "pokervod_db.cli"]
    name = f"{base_name}_migrate"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = conninfo(settings, name)
    durations = []
    for _ in range(repeats):
        recreate_database(settings, name)
        t0 = time.perf_counter()
        done = subprocess.run(
            [*command, "upgrade", "head"], env=env, capture_output=True, text=True, timeout=300
        )
        durations.append(time.perf_counter() - t0)
        if done.returncode != 0:
            drop_database(settings, name)
            raise RuntimeError(f"pokervod-db upgrade head failed: {done.stderr.strip()[-500:]}")
    # The DDL alone, in-process (no interpreter start, no imports).
    from pokervod_db import migrate

    recreate_database(settings, name)
    t0 = time.perf_counter()
    migrate.upgrade(settings.with_url(conninfo(settings, name)))
    in_process = time.perf_counter() - t0
    drop_database(settings, name)
    median = statistics.median(durations)
    return {
        "command": "pokervod-db upgrade head",
        "process_s": [round(d, 3) for d in durations],
        "median_s": round(median, 3),
        "in_process_s": round(in_process, 3),
        "target_s": 2.0,
        "met": median < 2.0,
    }


def _run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 3600) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def _client_tools(settings: Settings) -> tuple[str, str] | None:
    """pg_dump and pg_restore of the server's major version if installed, else the newest.

    A newer pg_restore writes settings an older server does not know (PostgreSQL 18's
    ``transaction_timeout`` on 15), so the tools of the server's own version come first.
    """
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        major = conn.info.server_version // 10000
    dirs = [Path(f"/usr/lib/postgresql/{major}/bin"), embedded.bin_dir()]
    which = shutil.which("pg_dump")
    if which:
        dirs.append(Path(which).parent)
    for directory in dirs:
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if dump.exists() and restore.exists():
            return str(dump), str(restore)
    return None


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def time_backup_restore(
    settings: Settings, base_name: str, *, log: Callable[[str], None]
) -> dict[str, Any]:
    """Bare pg_dump -Fc / pg_restore --single-transaction, and the package's backup if present."""
    tools = _client_tools(settings)
    if tools is None:
        return {"skipped": "pg_dump/pg_restore not found"}
    pg_dump, pg_restore = tools
    out: dict[str, Any] = {}
    target = f"{base_name}_restore"
    with tempfile.TemporaryDirectory(prefix="pokervod-bench-") as tmp:
        archive = Path(tmp) / "bare.dump"
        dump_s = _run(
            [pg_dump, "-Fc", "-n", "pokervod", "-f", str(archive), "-d", conninfo(settings)]
        )
        recreate_database(settings, target)
        restore_s = _run(
            [
                pg_restore,
                "--single-transaction",
                "--no-owner",
                "-d",
                conninfo(settings, target),
                str(archive),
            ]
        )
        drop_database(settings, target)
        out["bare"] = {
            "dump": "pg_dump -Fc -n pokervod (default gzip)",
            "tools": str(Path(pg_dump).parent),
            "restore": "pg_restore --single-transaction into an empty database",
            "backup_s": round(dump_s, 3),
            "archive_bytes": _size(archive),
            "restore_s": round(restore_s, 3),
        }
        log(
            f"  bare pg_dump -Fc {dump_s:.1f} s ({_size(archive) / 1e6:.0f} MB), "
            f"pg_restore --single-transaction {restore_s:.1f} s"
        )
        archive.unlink()
        out["package"] = _package_backup(settings, target, Path(tmp), log)
    bare, pkg = out["bare"], out["package"]
    if "backup_s" in pkg:
        pkg["backup_ratio_to_bare"] = round(pkg["backup_s"] / bare["backup_s"], 3)
        pkg["restore_ratio_to_bare"] = round(pkg["restore_s"] / bare["restore_s"], 3)
        pkg["size_ratio_to_bare"] = round(pkg["archive_bytes"] / bare["archive_bytes"], 3)
        pkg["met"] = {
            "backup_under_15_s": pkg["backup_s"] < 15,
            "restore_under_45_s": pkg["restore_s"] < 45,
            "archive_not_larger_than_bare": pkg["archive_bytes"] <= bare["archive_bytes"],
        }
    return out


def _package_backup(
    settings: Settings, target: str, tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """Times `pokervod_db.backup` (create_backup / restore_backup) on the same database."""
    from pokervod_db import backup

    t0 = time.perf_counter()
    made = backup.create_backup(settings, backup_dir=tmp / "pkg", upload=False)
    backup_s = time.perf_counter() - t0
    recreate_database(settings, target)
    target_settings = settings.with_url(conninfo(settings, target))
    t0 = time.perf_counter()
    restored = backup.restore_backup(target_settings, archive=made.file, safety_backup=False)
    restore_s = time.perf_counter() - t0
    drop_database(settings, target)
    result = {
        "backup": "pokervod_db.backup.create_backup (defaults)",
        "restore": "pokervod_db.backup.restore_backup into an empty database, no safety backup",
        "format": getattr(made, "kind", None),
        "compression": getattr(made, "compression", None),
        "backup_s": round(backup_s, 3),
        "archive_bytes": int(made.size_bytes),
        "restore_s": round(restore_s, 3),
        # Where the restore's time went: schema, copy, index, key, foreign-key, check, commit.
        "restore_phases_s": restored.phases,
    }
    log(
        f"  pokervod_db.backup {backup_s:.1f} s ({made.size_bytes / 1e6:.0f} MB), "
        f"restore {restore_s:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in restored.phases.items())
        + ")"
    )
    return result
