"""Physical backup and restore beside the logical ones, and replica lag during the ingest.

JSON keys ``physical`` (a verified full base backup of the benchmark server, then a restore of
it into a scratch data directory, as after a lost disk: pg_combinebackup, recovery, start,
check) and ``replica_lag`` (a streaming standby made before the ingest, its replay lag and the
bytes it is behind sampled every 0.25 s while the ingest runs). Both need the embedded
binaries; they are skipped for a server the benchmark cannot reach with replication.

``python -m benchmarks.physical --scale default`` runs these two sections alone on the
benchmark archive (plus the ingest they watch) and saves a ``…-physical-supplement.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from pokervod_db import embedded, replicas
from pokervod_db.backup import physical
from pokervod_db.errors import PokervodDBError
from pokervod_db.settings import Settings

_LAG = (
    "SELECT extract(epoch FROM r.replay_lag)::float8, "
    "pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint "
    "FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid "
    "WHERE s.slot_name = %s"
)


def _version_mismatch(settings: Settings) -> str | None:
    """Why the embedded PostgreSQL 18 binaries cannot run a copy of this server, if they cannot."""
    with psycopg.connect(settings.libpq_url()) as conn:
        major = int(conn.info.server_version) // 10000
    if major != EMBEDDED_MAJOR:
        return f"the server is PostgreSQL {major}; the embedded binaries run {EMBEDDED_MAJOR} only"
    return None


EMBEDDED_MAJOR = 18


def _scratch() -> Path:
    base = Path(tempfile.mkdtemp(prefix="pv-bench-phys-"))
    base.chmod(0o755)
    return base


class LagProbe:
    """A standby of the benchmark server and a thread that samples its lag on the primary."""

    def __init__(self, settings: Settings, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.log = log
        self.base = _scratch()
        self.directory = self.base / "replica"
        self.samples: list[tuple[float, float | None, int]] = []
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.create_s = 0.0
        self.error: str | None = None

    def start(self) -> LagProbe:
        t0 = time.perf_counter()
        self.error = _version_mismatch(self.settings)
        if self.error is not None:
            self.log(f"  replica lag skipped: {self.error}")
            return self
        try:
            replicas.create_replica(self.settings, self.directory)
            replicas.start_replica(self.directory)
        except PokervodDBError as exc:
            self.error = str(exc)
            self.log(f"  replica lag skipped: {exc}")
            try:
                replicas.drop_slot(self.settings, replicas.slot_name(self.directory))
            except Exception:  # best effort: the slot may never have been made
                pass
            return self
        self.create_s = time.perf_counter() - t0
        self.log(f"  standby created and started in {self.create_s:.1f} s")
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        slot = replicas.slot_name(self.directory)
        with psycopg.connect(self.settings.libpq_url(), autocommit=True) as conn:
            t0 = time.perf_counter()
            while not self.stop.is_set():
                row = conn.execute(_LAG, (slot,)).fetchone()  # type: ignore[arg-type]
                if row is not None:
                    lag = float(row[0]) if row[0] is not None else None
                    self.samples.append((time.perf_counter() - t0, lag, int(row[1] or 0)))
                time.sleep(0.25)

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
        try:
            if self.error is None:
                replicas.stop_replica(self.directory)
                replicas.drop_slot(self.settings, replicas.slot_name(self.directory))
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
        if self.error is not None:
            return {"skipped": self.error}
        lags = [s[1] for s in self.samples if s[1] is not None]
        behind = [s[2] for s in self.samples]
        return {
            "how": "standby by pg_basebackup -R (slot), streaming; pg_stat_replication.replay_lag "
            "and bytes behind sampled every 0.25 s during the ingest section",
            "replica_create_s": round(self.create_s, 3),
            "samples": len(self.samples),
            "max_lag_s": round(max(lags), 3) if lags else None,
            "p95_lag_s": round(statistics.quantiles(lags, n=20)[-1], 3)
            if len(lags) >= 20
            else None,
            "median_lag_s": round(statistics.median(lags), 3) if lags else None,
            "max_bytes_behind": max(behind) if behind else None,
        }


def time_physical(settings: Settings, *, log: Callable[[str], None]) -> dict[str, Any]:
    """A verified full base backup of the benchmark server and a restore of it (scratch)."""
    mismatch = _version_mismatch(settings)
    if mismatch is not None:
        log(f"  physical skipped: {mismatch}")
        return {"skipped": mismatch}
    base = _scratch()
    database = settings.url().database or "postgres"
    try:
        backups = settings.model_copy(update={"backup_dir": base / "backups"})
        t0 = time.perf_counter()
        made = physical.create_physical_backup(backups, full=True)
        total_s = time.perf_counter() - t0
        log(
            f"  physical base backup {made.duration_s:.1f} s + pg_verifybackup "
            f"{total_s - made.duration_s:.1f} s ({made.size_bytes / 1e6:.0f} MB)"
        )
        scratch = Settings(  # type: ignore[call-arg]
            _env_file=None,
            EMBEDDED_DATA_DIR=base / "restored",
            BACKUP_DIR=base / "backups",
            EMBEDDED_DATABASE=database,
        )
        t0 = time.perf_counter()
        restored = physical.restore_physical(scratch)
        restore_s = time.perf_counter() - t0
        embedded.stop(scratch)
        log(f"  physical restore {restore_s:.1f} s ({restored.checked})")
        return {
            "backup": "pg_basebackup -Fp -X stream --checkpoint=fast (whole server), full",
            "restore": "pokervod_db.backup.physical.restore_physical into an empty data "
            "directory: pg_combinebackup, recovery, start, check",
            "backup_s": made.duration_s,
            "verify_s": round(total_s - made.duration_s, 3),
            "backup_bytes": made.size_bytes,
            "restore_s": round(restore_s, 3),
            "verified": made.verified,
        }
    except PokervodDBError as exc:
        log(f"  physical skipped: {exc}")
        return {"skipped": str(exc)}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def measure_loss_window(*, timeout_s: int = 60, commits: int = 3) -> dict[str, Any]:
    """Seconds from a lone commit until its WAL segment is in the archive (BACKUP_WAL=true on a
    private embedded server, archive_timeout ``timeout_s``): the data a lost disk would take."""
    base = _scratch()
    configured = Settings(  # type: ignore[call-arg]
        _env_file=None,
        EMBEDDED_DATA_DIR=base / "pgdata",
        BACKUP_DIR=base / "backups",
        BACKUP_WAL=True,
        WAL_ARCHIVE_TIMEOUT_S=timeout_s,
    )
    waits: list[float] = []
    try:
        url = embedded.start(configured).libpq_url()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS public.loss_probe (at timestamptz)")
            for _ in range(commits):
                conn.execute("SELECT pg_switch_wal()")  # start from a fresh segment, as at rest
                time.sleep(2)
                row = conn.execute(
                    "INSERT INTO public.loss_probe VALUES (now()) "
                    "RETURNING pg_walfile_name(pg_current_wal_lsn())"
                ).fetchone()
                assert row is not None
                segment = str(row[0])
                t0 = time.perf_counter()
                while not (base / "backups" / "wal" / segment).exists():
                    time.sleep(0.1)
                    if time.perf_counter() - t0 > 10 * timeout_s:
                        raise RuntimeError(f"{segment} was never archived")
                waits.append(round(time.perf_counter() - t0, 2))
    finally:
        embedded.stop(configured)
        shutil.rmtree(base, ignore_errors=True)
    return {
        "archive_timeout_s": timeout_s,
        "commit_to_archived_s": waits,
        "max_s": max(waits),
        "how": "a lone commit on an idle server, then wait until its segment is in BACKUP_DIR/wal",
    }


def main(argv: list[str] | None = None) -> int:
    """Run the physical and replica-lag sections alone and save a supplement."""
    from benchmarks import run, writes
    from benchmarks.scales import SCALES
    from pokervod_db.database import async_session_factory, create_engine

    parser = argparse.ArgumentParser(prog="python -m benchmarks.physical")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default")
    parser.add_argument("--output-dir", type=Path, default=run.RESULTS_DIR)
    parser.add_argument("--data-dir", type=Path, default=run.BENCH_DATA_DIR)
    parser.add_argument(
        "--loss-window", action="store_true", help="only measure the archiving data-loss window"
    )
    args = parser.parse_args(argv)
    if args.loss_window:
        print(json.dumps(measure_loss_window(), indent=2))
        return 0
    scale = SCALES[args.scale]
    settings = run.bench_settings(scale, url=None, data_dir=args.data_dir)
    started = datetime.now(UTC)

    async def _go() -> dict[str, Any]:
        await run._prepare(settings, scale, regenerate=False, log=print)
        probe = LagProbe(settings, print).start()
        engine = create_engine(settings, application_name="pokervod-bench")
        try:
            ingest = await writes.time_writes(
                engine,
                async_session_factory(engine),
                fresh_rows=scale.fresh_rows,
                orm_rows=scale.orm_rows,
                reupsert=True,
                log=print,
            )
        finally:
            await engine.dispose()
            lag = probe.finish()
        return {"ingest": ingest, "replica_lag": lag}

    watched = asyncio.run(_go())
    results = {
        "scale": scale.name,
        "started_at": started.isoformat(),
        "physical": time_physical(settings, log=print),
        "replica_lag": watched["replica_lag"],
        "ingest_watched": watched["ingest"],
    }
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    path = args.output_dir / f"{scale.name}-{stamp}-physical-supplement.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: results[k] for k in ("physical", "replica_lag")}, indent=2))
    print(f"saved {path}")
    embedded.stop(Settings(_env_file=None, EMBEDDED_DATA_DIR=args.data_dir))  # type: ignore[call-arg]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
