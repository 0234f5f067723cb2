"""Loading an archive's DATA into a database in ONE transaction that commits only when proven.

An archive is data, never code. Whoever can write the backup directory or the bucket can put
anything into an archive (functions, triggers, roles, ``COPY … TO PROGRAM``), so nothing from it
is executed. The schema comes from this package's own migrations, run up to the archive's
revision on our connection; from the archive only the rows of the known tables (``TABLE DATA``)
and the values of their sequences (``SEQUENCE SET``) are taken, through a filtered table of
contents (``pg_restore --data-only --use-list``). pg_restore's output is not run as a script
either: we read it, accept only ``COPY`` blocks into known tables (sent with ``COPY … FROM STDIN``
statements we build ourselves, so a crafted ``\\.`` line cannot end the data and start SQL) and
``setval`` calls on our sequences; any other statement refuses the archive. In one transaction:

    BEGIN;
    ALTER SCHEMA pokervod RENAME TO pokervod_old_…;   -- only when replacing existing data
    CREATE SCHEMA pokervod; <our migrations up to the archive's revision>
    <drop the secondary indexes, keys and foreign keys our migrations built>
    COPY … FREEZE for each table (the tables were created in this transaction)
    <rebuild the indexes and keys with parallel workers, then the foreign keys>
    <row counts, objects and revision equal the manifest's, else an error>
    COMMIT;

``COMMIT`` is sent only after pg_restore exited 0 with nothing on stderr and the whole stream
arrived. If anything dies on the way (pg_restore or our own process, whose children die with
it), the server rolls the transaction back: the database keeps the complete old data.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection

from pokervod_db.backup.archive import ArchiveKind, Manifest, archive_size
from pokervod_db.backup.checks import ArchiveCheck, known_tables
from pokervod_db.backup.connection import maintenance_connection
from pokervod_db.backup.content import object_counts_sql, quote_ident, quote_literal
from pokervod_db.backup.progress import PhaseTimer, Progress, ProgressFn, Throttle, log, report
from pokervod_db.backup.streams import CHUNK, Feeder
from pokervod_db.backup.tools import PgTools, StderrReader, spawn, stop
from pokervod_db.errors import BackupError
from pokervod_db.search import STATISTICS_SQL
from pokervod_db.settings import SCHEMA, Settings
from pokervod_db.treecache import REBUILD_VERSIONS_SQL

# Index builds after the load: memory and parallel workers for the sorts (transaction-local).
MAINTENANCE_WORK_MEM = "512MB"
PARALLEL_MAINTENANCE_WORKERS = 4

_IDENT = r'(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")'
_COPY = re.compile(
    rf"^COPY {re.escape(SCHEMA)}\.(?P<table>{_IDENT}) \((?P<cols>{_IDENT}(?:, {_IDENT})*)\) "
    r"FROM stdin;$"
)
_COLUMN = re.compile(_IDENT)
_SETVAL = re.compile(
    rf"^SELECT pg_catalog\.setval\('{re.escape(SCHEMA)}\.(?P<seq>[a-z_][a-z0-9_]*)', "
    r"(?P<value>-?\d+), (?P<called>true|false)\);$"
)
# Header lines of pg_restore's script that we read past without running them.
_IGNORED = re.compile(
    r"^(?:--.*|\\(?:un)?restrict [A-Za-z0-9]+|SET [a-z_]+ = [^;]*;|"
    r"SELECT pg_catalog\.set_config\('search_path', '', false\);)$"
)
_ENCODING = re.compile(r"^SET client_encoding = '(?P<enc>[A-Za-z0-9_]+)';$")
_END_OF_DATA = b"\\.\n"


def check_sql(manifest: Manifest, *, counted: frozenset[str] = frozenset()) -> str:
    """A DO block that raises unless the loaded schema matches the manifest.

    Tables in ``counted`` were filled by one COPY each into an empty table, so COPY's own row
    count is theirs (checked by the caller): counting them again would read every row once more.
    """
    lines = ["DO $pokervod_check$", "DECLARE n bigint; r text;", "BEGIN"]
    for table, expected in sorted(manifest.row_counts.items()):
        if table in counted:
            continue
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


def build_schema(conn: Connection, revision: str) -> None:
    """Create schema ``pokervod`` at ``revision`` with our migrations, in the caller's transaction.

    Alembic runs on the given connection with no commit of its own (env.py is not used: it
    commits), so the new schema appears only with the restore's COMMIT.
    """
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from pokervod_db import migrate
    from pokervod_db.models import Base

    script = migrate.script_directory()

    def upgrade(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs(revision, rev)

    conn.exec_driver_sql(f"CREATE SCHEMA {quote_ident(SCHEMA)}")
    ctx = MigrationContext.configure(
        connection=conn,
        opts={
            "version_table_schema": SCHEMA,
            "target_metadata": Base.metadata,
            "fn": upgrade,
            "transactional_ddl": True,
        },
    )
    with Operations.context(ctx):
        ctx.run_migrations()


def _set_aside_keys_and_indexes(cur: Any) -> list[str]:
    """Drop the keys and secondary indexes of the new (empty) schema; return how to rebuild them.

    Loading into bare tables and building each index once afterwards (with parallel workers and
    memory for the sort) is faster than maintaining every index row by row during COPY.
    """
    ns = f"(SELECT oid FROM pg_namespace WHERE nspname = {quote_literal(SCHEMA)})"
    cur.execute(
        "SELECT format('%s', conrelid::regclass), quote_ident(conname), "
        "pg_get_constraintdef(oid), contype::text "
        f"FROM pg_constraint WHERE connamespace = {ns} AND contype IN ('p', 'u', 'f', 'x') "
        "ORDER BY contype = 'f' DESC, conname"
    )
    constraints = [(str(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in cur.fetchall()]
    cur.execute(
        "SELECT format('%s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid) "
        f"FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = {ns} "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "ORDER BY 1"
    )
    indexes = [(str(r[0]), str(r[1])) for r in cur.fetchall()]
    rebuild: list[str] = []
    for table, name, _definition, _kind in constraints:  # foreign keys first (they need keys)
        cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    for index, definition in indexes:
        cur.execute(f"DROP INDEX {index}")
        rebuild.append(definition)
    keys = [c for c in constraints if c[3] != "f"]
    foreign = [c for c in constraints if c[3] == "f"]
    for table, name, definition, _kind in [*keys, *foreign]:
        rebuild.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    return rebuild


def _user_triggers(cur: Any, *, enable: bool, tables: Sequence[str] | None = None) -> list[str]:
    """Switch off (or back on) the triggers our migrations put on the new tables.

    The rows are loaded as they were dumped: values that triggers derive (a tag link's copy of
    its clip's timestamps, the per-tag counters of 005_tag_link_created_at) are in the archive
    already, and running the triggers again would count every link twice. Returns the tables.
    """
    if tables is None:
        cur.execute(
            "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relnamespace = %s::regnamespace AND NOT t.tgisinternal ORDER BY 1",
            (SCHEMA,),
        )
        tables = [row[0] for row in cur.fetchall()]
    action = "ENABLE" if enable else "DISABLE"
    for table in tables:
        cur.execute(f"ALTER TABLE {quote_ident(SCHEMA)}.{quote_ident(table)} {action} TRIGGER USER")
    return list(tables)


def _become_schema_owner(cur: Any) -> str | None:
    """Run the load as the owner of the existing schema when that role can do it (least rights).

    A superuser (or any member of the owner role) restoring the data of an application role
    then creates the new schema and its tables as that role, so ownership stays as it was and
    nothing in the load runs with more rights than the schema's owner has.
    """
    cur.execute(
        "SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner "
        "WHERE n.nspname = %s AND r.rolname <> current_user AND NOT r.rolsuper "
        "AND pg_has_role(current_user, r.oid, 'MEMBER') "
        "AND has_database_privilege(r.oid, current_database(), 'CREATE')",
        (SCHEMA,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    cur.execute(f"SET LOCAL ROLE {quote_ident(str(row[0]))}")
    return str(row[0])


def _require_empty_tables(cur: Any) -> None:
    """Our migrations create empty tables (COPY's row counts rely on it); prove it, cheaply."""
    ns = f"(SELECT oid FROM pg_namespace WHERE nspname = {quote_literal(SCHEMA)})"
    cur.execute(
        f"SELECT format('%s', oid::regclass) FROM pg_class WHERE relnamespace = {ns} "
        "AND relkind IN ('r', 'p') AND relname <> 'alembic_version'"
    )
    for (table,) in cur.fetchall():
        cur.execute(f"SELECT EXISTS (SELECT 1 FROM {table})")
        row = cur.fetchone()
        if row is not None and row[0]:
            raise BackupError(f"table {table} is not empty after the migrations; cannot restore")


class _DataReader:
    """Reads pg_restore's data-only script and turns it into COPY data and setval calls.

    Only these lines are accepted: comments, pg_restore's header settings (not run),
    ``COPY pokervod.<known table> (<columns>) FROM stdin;`` with its data up to ``\\.``, and
    ``SELECT pg_catalog.setval('pokervod.<sequence>', n, bool);``. Anything else is refused.
    """

    def __init__(
        self,
        cur: Any,
        *,
        revision: str | None,
        on_copy: Callable[[], None],
        timer: PhaseTimer | None = None,
    ) -> None:
        self._cur = cur
        self._timer = timer
        self._revision = revision
        self._on_copy = on_copy
        self._tables = known_tables()
        self._buf = b""
        self._copy: Any = None
        self._copy_cm: Any = None
        self._at_line_start = True
        self._version_rows: list[bytes] | None = None
        self._table = ""
        self.loaded: list[str] = []
        self.counts: dict[str, int] = {}  # rows COPY reported per table

    def feed(self, chunk: bytes) -> None:
        self._buf += chunk
        while self._buf:
            if self._copy is not None or self._version_rows is not None:
                if not self._pump_copy():
                    return
                continue
            newline = self._buf.find(b"\n")
            if newline < 0:
                if len(self._buf) > 1 << 20:
                    raise BackupError("the archive's data holds a line over 1 MiB outside COPY")
                return
            line = self._buf[:newline].decode("utf-8", errors="replace")
            self._buf = self._buf[newline + 1 :]
            self._statement(line)

    def finish(self) -> None:
        if self._buf.strip() or self._copy is not None or self._version_rows is not None:
            raise BackupError("the archive's data ends in the middle of a table; nothing changed")

    def _statement(self, line: str) -> None:
        line = line.rstrip("\r")
        if not line or _IGNORED.match(line):
            if (enc := _ENCODING.match(line)) is not None and enc["enc"].upper() not in (
                "UTF8",
                "SQL_ASCII",
            ):
                raise BackupError(f"the archive's data is in encoding {enc['enc']}; expected UTF8")
            return
        if (m := _COPY.match(line)) is not None:
            table = _unquote(m["table"])
            if table not in self._tables:
                raise BackupError(f"the archive holds rows for an unknown table {table!r}")
            columns = [_unquote(c) for c in _COLUMN.findall(m["cols"])]
            self._on_copy()
            if table in self.loaded:
                raise BackupError(f"the archive holds the rows of table {table!r} twice")
            self.loaded.append(table)
            self._table = table
            if table == "alembic_version":
                # Our migrations wrote the revision; the archive's row must say the same.
                self._version_rows = []
                return
            from psycopg import sql

            statement = sql.SQL("COPY {}.{} ({}) FROM STDIN WITH (FREEZE)").format(
                sql.Identifier(SCHEMA),
                sql.Identifier(table),
                sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            )
            self._copy_cm = self._cur.copy(statement)
            self._copy = self._copy_cm.__enter__()
            self._at_line_start = True
            return
        if (m := _SETVAL.match(line)) is not None:
            self._cur.execute(
                "SELECT pg_catalog.setval(%s::regclass, %s, %s)",
                (
                    f"{quote_ident(SCHEMA)}.{quote_ident(m['seq'])}",
                    int(m["value"]),
                    m["called"] == "true",
                ),
            )
            return
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise BackupError(
            f"the archive's data holds a statement that is not table data ({shown!r}); "
            "it is refused and nothing was changed"
        )

    def _pump_copy(self) -> bool:
        """Move COPY data on; True when the block ended (more statements may follow)."""
        buf = self._buf
        if not self._at_line_start:
            newline = buf.find(b"\n")
            if newline < 0:
                self._emit(buf)
                self._buf = b""
                return False
            self._emit(buf[: newline + 1])
            buf = buf[newline + 1 :]
            self._at_line_start = True
        if len(buf) < len(_END_OF_DATA) and _END_OF_DATA.startswith(buf):
            self._buf = buf
            return False
        if buf.startswith(_END_OF_DATA):
            self._buf = buf[len(_END_OF_DATA) :]
            self._end_copy()
            return True
        end = buf.find(b"\n" + _END_OF_DATA)
        if end >= 0:
            self._emit(buf[: end + 1])
            self._buf = buf[end + 1 :]
            return True  # the next round sees the end marker at a line start
        last = buf.rfind(b"\n")
        if last < 0:
            self._emit(buf)
            self._buf = b""
            self._at_line_start = False
            return False
        self._emit(buf[: last + 1])
        self._buf = buf[last + 1 :]
        if len(self._buf) >= len(_END_OF_DATA):  # a long partial line: not the end marker
            self._emit(self._buf)
            self._buf = b""
            self._at_line_start = False
        return False

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if self._version_rows is not None:
            self._version_rows.append(data)
        else:
            self._copy.write(data)

    def _end_copy(self) -> None:
        if self._version_rows is not None:
            rows = b"".join(self._version_rows).decode("utf-8", errors="replace").splitlines()
            self._version_rows = None
            if rows != [self._revision]:
                raise BackupError(
                    f"the archive's alembic_version holds {rows[:2]}, its manifest says "
                    f"{self._revision}; the archive is refused"
                )
            return
        self._copy_cm.__exit__(None, None, None)
        self._copy = self._copy_cm = None
        self.counts[self._table] = int(self._cur.rowcount)
        if self._timer is not None:
            self._timer.lap(f"copy {self._table}")


def _rebuild_label(statement: str) -> str:
    """``index <name>``, ``key <name>`` or ``foreign-key <name>`` for a rebuild statement."""
    if (m := re.match(r"CREATE (?:UNIQUE )?INDEX (\S+)", statement)) is not None:
        return f"index {m[1]}"
    if (m := re.search(r" ADD CONSTRAINT (\S+) (FOREIGN KEY)?", statement)) is not None:
        return f"{'foreign-key' if m[2] else 'key'} {m[1]}"
    return "rebuild"


def _unquote(name: str) -> str:
    if name.startswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def load_archive(  # noqa: C901 (the restore's one transaction, step by step; security just rewrote it)
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
) -> dict[str, float]:
    """Load the checked archive's data into ``database`` (default: the settings' one) atomically.

    With ``move_existing_to``, the existing schema is renamed to that name in the same
    transaction, so the swap from old to new data is a single commit. ``extra_sql`` (our own
    SQL, never the archive's) runs after the load, before the checks. The caller holds the
    maintenance lock when replacing live data. Returns the seconds spent per kind of step
    (`PhaseTimer.groups`: ``schema``, ``copy``, ``index``, ``key``, ``foreign-key``, ``check``,
    ``commit``), which says where a slow restore spent its time.
    """
    if check.manifest.revision is None:
        raise BackupError(f"{check.path.name} has no revision; it cannot be restored")
    target = (
        settings if database is None else settings.with_url(settings.url().set(database=database))
    )
    tables_total = len(check.toc.data_tables)
    bytes_total = archive_size(check.path)
    state = {"tables": 0, "bytes": 0}

    def tick() -> None:
        report(
            progress, Progress(phase, state["tables"], tables_total, state["bytes"], bytes_total)
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
    restore: subprocess.Popen[bytes] | None = None
    feeder: Feeder | None = None
    with (
        tempfile.TemporaryDirectory(prefix="pokervod_restore_") as scratch,
        maintenance_connection(target, application_name=f"pokervod-db {phase}") as conn,
    ):
        list_file = Path(scratch) / "data.list"
        list_file.write_text("".join(e.line + "\n" for e in check.toc.data_entries()))
        argv = [
            tools.path("pg_restore"),
            "--data-only",
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--use-list",
            str(list_file),
            "--file",
            "-",
        ]
        if check.kind is ArchiveKind.DIRECTORY:
            argv += ["--format", "directory", str(check.path)]
        else:
            argv += ["--format", "custom"]
        try:
            conn.begin()
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            cur.execute("SET LOCAL statement_timeout = 0")
            cur.execute(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
            cur.execute(
                "SELECT set_config('max_parallel_maintenance_workers', "
                "least(%s, current_setting('max_worker_processes')::int)::text, true)",
                (PARALLEL_MAINTENANCE_WORKERS,),
            )
            timer = PhaseTimer(phase)
            _become_schema_owner(cur)
            if move_existing_to is not None:
                cur.execute(
                    f"ALTER SCHEMA {quote_ident(SCHEMA)} RENAME TO {quote_ident(move_existing_to)}"
                )
            build_schema(conn, check.manifest.revision)
            rebuild = _set_aside_keys_and_indexes(cur)
            _require_empty_tables(cur)
            triggered = _user_triggers(cur, enable=False)
            timer.lap("schema")
            env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C"}  # pg_restore only reads the archive
            restore = spawn(
                argv,
                env=env,
                stdin=None if check.kind is ArchiveKind.DIRECTORY else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            restore_errors = StderrReader(restore.stderr)
            if restore.stdin is not None:
                feeder = Feeder(check.path, check.kind, restore.stdin, on_bytes)
            assert restore.stdout is not None
            reader = _DataReader(
                cur, revision=check.manifest.revision, on_copy=on_copy, timer=timer
            )
            _pump(restore.stdout, reader)
            restore_rc = restore.wait()
            restore_errors.join()
            if feeder is not None:
                feeder.join()
                if feeder.error is not None:
                    raise BackupError(
                        f"reading {check.path.name} failed; nothing was changed: {feeder.error}"
                    ) from feeder.error
            if restore_rc != 0 or restore_errors.has_errors():
                raise BackupError(
                    f"pg_restore failed (exit {restore_rc}); nothing was changed: "
                    f"{restore_errors.summary()}"
                )
            reader.finish()
            _user_triggers(cur, enable=True, tables=triggered)
            timer.lap("copy (end of stream)")
            report(progress, Progress(f"{phase}: indexes", tables_total, tables_total))
            for statement in rebuild:
                cur.execute(statement)
                timer.lap(_rebuild_label(statement))
            state["tables"] = tables_total
            report(
                progress,
                Progress(f"{phase}: check", tables_total, tables_total, bytes_total, bytes_total),
            )
            for table, rows in sorted(reader.counts.items()):
                expected = check.manifest.row_counts.get(table)
                if rows != expected:
                    raise BackupError(
                        f"restore check failed: table {table} has {rows} rows, the manifest "
                        f"says {expected}; nothing was changed"
                    )
            cur.execute(REBUILD_VERSIONS_SQL)  # derived data: never the archive's
            if extra_sql:
                cur.execute(extra_sql)
            cur.execute(check_sql(check.manifest, counted=frozenset(reader.counts)))
            timer.lap("check")
            cur.execute(STATISTICS_SQL)  # search's idf: the loaded rows have no statistics yet
            timer.lap("statistics")
            conn.commit()
            timer.lap("commit")
            log.info("%s", timer.summary())
            return timer.groups()
        except Exception as exc:
            from psycopg import Error as PsycopgError

            try:
                conn.rollback()
            except Exception:  # mid-COPY or connection gone: the server rolls back anyway
                conn.invalidate()
            if not isinstance(exc, PsycopgError):
                raise
            message = str(exc).strip().splitlines()
            raise BackupError(
                f"the {phase} failed and was rolled back: {message[0] if message else exc}"
            ) from exc
        finally:
            stop(restore)
            if feeder is not None:
                feeder.join()


def _pump(source: IO[bytes], reader: _DataReader) -> None:
    while True:
        chunk = source.read1(CHUNK) if hasattr(source, "read1") else source.read(CHUNK)
        if not chunk:
            break
        reader.feed(chunk)
