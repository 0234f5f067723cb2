"""Loading an archive into a database in ONE transaction that commits only when all is proven.

``pg_restore --file -`` turns the archive into an SQL script; psql runs it. We stand between them
and decide the transaction's fate ourselves:

    BEGIN;
    ALTER SCHEMA pokervod RENAME TO pokervod_old_…;   -- only when replacing existing data
    <the whole script of the archive>
    DO $$ … row counts, objects and revision equal the manifest's, else RAISE … $$;
    COMMIT;

psql runs with ``ON_ERROR_STOP``, so the first failed statement ends it and the server rolls the
transaction back. ``COMMIT`` is written only after pg_restore exited 0 with no error on stderr and
the whole stream arrived. If anything dies on the way (pg_restore, psql, or our own process, whose
children die with it), psql never sends ``COMMIT`` and the server rolls back: the database keeps
the complete old data. We do not use ``psql --single-transaction``: it commits when its input
ends, so a stream cut short (a killed pg_restore) would be committed half-loaded.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import IO

from pokervod_db.backup.archive import ArchiveKind, Manifest, archive_size
from pokervod_db.backup.checks import ArchiveCheck
from pokervod_db.backup.content import object_counts_sql, quote_ident, quote_literal
from pokervod_db.backup.progress import Progress, ProgressFn, Throttle, report
from pokervod_db.backup.streams import CHUNK, Feeder
from pokervod_db.backup.tools import PgTools, StderrReader, libpq_environment, spawn, stop
from pokervod_db.errors import BackupError
from pokervod_db.settings import SCHEMA, Settings

# pg_dump 17+ scripts set transaction_timeout, which servers before 17 reject; with
# ON_ERROR_STOP that would fail every restore into PostgreSQL 15 or 16.
_TRANSACTION_TIMEOUT = b"SET transaction_timeout = 0;\n"
_HEADER_BYTES = 64 * 1024


def check_sql(manifest: Manifest) -> str:
    """A DO block that raises unless the loaded schema matches the manifest."""
    lines = ["DO $pokervod_check$", "DECLARE n bigint; r text;", "BEGIN"]
    for table, expected in sorted(manifest.row_counts.items()):
        lines.append(f"  SELECT count(*) INTO n FROM {quote_ident(SCHEMA)}.{quote_ident(table)};")
        lines.append(
            f"  IF n <> {int(expected)} THEN RAISE EXCEPTION "
            f"'restore check failed: table % has % rows, the manifest says %', "
            f"{quote_literal(table)}, n, {int(expected)}; END IF;"
        )
    queries = object_counts_sql(SCHEMA)
    for name, expected in sorted(manifest.objects.items()):
        if name not in queries:
            continue
        lines.append(f"  n := ({queries[name]});")
        lines.append(
            f"  IF n <> {int(expected)} THEN RAISE EXCEPTION "
            f"'restore check failed: % % in schema {SCHEMA}, the manifest says %', "
            f"n, {quote_literal(name)}, {int(expected)}; END IF;"
        )
    if manifest.revision is not None:
        lines.append(f"  SELECT version_num INTO r FROM {quote_ident(SCHEMA)}.alembic_version;")
        lines.append(
            f"  IF r IS DISTINCT FROM {quote_literal(manifest.revision)} THEN RAISE EXCEPTION "
            f"'restore check failed: revision %, the manifest says %', r, "
            f"{quote_literal(manifest.revision)}; END IF;"
        )
    lines += ["END", "$pokervod_check$;", ""]
    return "\n".join(lines)


def load_archive(  # noqa: C901 (being changed on other branches; split once they landed)
    settings: Settings,
    tools: PgTools,
    check: ArchiveCheck,
    *,
    server_version_num: int,
    database: str | None = None,
    move_existing_to: str | None = None,
    phase: str = "restore",
    progress: ProgressFn | None = None,
    extra_sql: str = "",
) -> None:
    """Load the checked archive into ``database`` (default: the settings' database) atomically.

    With ``move_existing_to``, the existing schema is renamed to that name in the same
    transaction, so the swap from old to new data is a single commit. ``extra_sql`` runs in the
    transaction after the archive's script, before the checks. The caller holds the
    maintenance lock when replacing live data.
    """
    env, conninfo = libpq_environment(
        settings,
        database=database,
        application_name=f"pokervod-db {phase}",
        server_version_num=server_version_num,
    )
    restore_argv = [tools.path("pg_restore"), "--file", "-", "--no-owner", "--exit-on-error"]
    if check.kind is ArchiveKind.DIRECTORY:
        restore_argv += ["--format", "directory", str(check.path)]
    else:
        restore_argv += ["--format", "custom"]
    psql_argv = [
        tools.path("psql"),
        "--no-psqlrc",
        "--quiet",
        "--set",
        "ON_ERROR_STOP=1",
        "--dbname",
        conninfo,
        "--file",
        "-",
    ]
    tables_total = len(check.toc.data_tables)
    bytes_total = archive_size(check.path)
    state = {"tables": 0, "bytes": 0}

    def tick() -> None:
        report(
            progress,
            Progress(phase, state["tables"], tables_total, state["bytes"], bytes_total),
        )

    throttle = Throttle()

    def on_bytes(n: int) -> None:
        state["bytes"] = n
        if throttle.due():
            tick()

    def on_copy() -> None:
        state["tables"] += 1
        tick()

    report(progress, Progress(phase, 0, tables_total, 0, bytes_total))
    psql: subprocess.Popen[bytes] | None = None
    restore: subprocess.Popen[bytes] | None = None
    feeder: Feeder | None = None
    try:
        psql = spawn(
            psql_argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        psql_errors = StderrReader(psql.stderr)
        stdin_mode = None if check.kind is ArchiveKind.DIRECTORY else subprocess.PIPE
        restore = spawn(
            restore_argv, env=env, stdin=stdin_mode, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        restore_errors = StderrReader(restore.stderr)
        if restore.stdin is not None:
            feeder = Feeder(check.path, check.kind, restore.stdin, on_bytes)
        assert psql.stdin is not None and restore.stdout is not None
        preamble = "BEGIN;\n"
        if move_existing_to is not None:
            preamble += (
                f"ALTER SCHEMA {quote_ident(SCHEMA)} RENAME TO {quote_ident(move_existing_to)};\n"
            )
        psql_alive = _write(psql.stdin, preamble.encode())
        if psql_alive:
            psql_alive = _pump_script(
                restore.stdout,
                psql.stdin,
                strip_transaction_timeout=server_version_num < 170000,
                on_copy=on_copy,
            )
        if not psql_alive:
            stop(restore)  # psql stopped at an error: no reason to keep producing the script
        restore_rc = restore.wait()
        restore_errors.join()
        if feeder is not None:
            feeder.join()
        if not psql_alive:
            psql_rc = psql.wait()
            psql_errors.join()
            raise BackupError(f"the restore failed and was rolled back: {psql_errors.summary()}")
        if feeder is not None and feeder.error is not None:
            raise BackupError(
                f"reading {check.path.name} failed; nothing was changed: {feeder.error}"
            ) from feeder.error
        if restore_rc != 0 or restore_errors.has_errors():
            raise BackupError(
                f"pg_restore failed (exit {restore_rc}); nothing was changed: "
                f"{restore_errors.summary()}"
            )
        state["tables"] = tables_total
        report(
            progress,
            Progress(f"{phase}: check", tables_total, tables_total, bytes_total, bytes_total),
        )
        # Everything arrived: let the server prove the counts, then commit. psql stops at the
        # first error (ON_ERROR_STOP), so a failed check never reaches COMMIT.
        closing = extra_sql + check_sql(check.manifest) + "COMMIT;\n"
        finished = _write(psql.stdin, closing.encode())
        try:
            psql.stdin.close()
        except BrokenPipeError:
            finished = False
        psql_rc = psql.wait()
        psql_errors.join()
        if not finished or psql_rc != 0 or psql_errors.has_errors():
            raise BackupError(
                f"the restore failed and was rolled back (psql exit {psql_rc}): "
                f"{psql_errors.summary()}"
            )
    finally:
        stop(restore)
        stop(psql)  # a psql still running here has not committed: killing it rolls back
        if feeder is not None:
            feeder.join()


def _write(sink: IO[bytes], data: bytes) -> bool:
    try:
        sink.write(data)
        sink.flush()
    except BrokenPipeError:
        return False
    return True


def _pump_script(
    source: IO[bytes],
    sink: IO[bytes],
    *,
    strip_transaction_timeout: bool,
    on_copy: Callable[[], None],
) -> bool:
    """Copy pg_restore's script into psql; False when psql went away (it hit an error)."""
    head = b""
    in_header = strip_transaction_timeout
    while True:
        chunk = source.read1(CHUNK) if hasattr(source, "read1") else source.read(CHUNK)
        if not chunk:
            break
        if in_header:
            head += chunk
            if len(head) < _HEADER_BYTES:
                continue
            chunk, head, in_header = head.replace(_TRANSACTION_TIMEOUT, b"", 1), b"", False
        for _ in range(chunk.count(b"\nCOPY ")):
            on_copy()
        if not _write(sink, chunk):
            return False
    if head:
        head = head.replace(_TRANSACTION_TIMEOUT, b"", 1)
        for _ in range(head.count(b"\nCOPY ")):
            on_copy()
        return _write(sink, head)
    return True
