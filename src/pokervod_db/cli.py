"""The ``pokervod-db`` command: one subcommand per operation, dispatch and printing only.

Expected failures (bad settings, unreachable server, lock held, failed migration) print one
``FAILED: …`` line on stderr and exit 1; nothing else is printed for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pokervod_db import embedded, migrate
from pokervod_db.agent import DatabaseAgent, MigrationResult
from pokervod_db.database import (
    async_session_factory,
    create_engine,
    transaction,
)
from pokervod_db.errors import PokervodDBError, translated
from pokervod_db.events import Event, listen, read_events, to_json
from pokervod_db.health import HealthReport, MigrationStatus
from pokervod_db.settings import Settings
from pokervod_db.stats import DatabaseStats, human_bytes

app = typer.Typer(
    help="pokervod-db: the database layer of the pokervod archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# soft_wrap: a long line (a path, an error) stays one line when the output is not a terminal;
# tables get 160 columns there (a pipe, cron mail, CI log) instead of Rich's 80, so none is cut.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if where not in message:
            message = f"{where}: {message}"
        raise PokervodDBError(f"invalid settings: {message}") from exc


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(coro_fn())


def _started() -> Settings:
    return embedded.start(_settings())


# --- migrations -----------------------------------------------------------------------------


@app.command()
def up(
    sample: bool = typer.Option(False, "--sample", help="Also load the small sample catalog."),
) -> None:
    """Bring the database to the newest revision (starting the embedded server if needed)."""
    settings = _started()
    outcome = _migrate(settings, "upgrade", "head")
    if outcome.applied:
        console.print(f"applied {', '.join(outcome.applied)}")
    if sample:
        from pokervod_db.sample import load_sample

        async def _load() -> None:
            engine = create_engine(settings)
            try:
                with translated():
                    async with transaction(async_session_factory(engine)) as session:
                        summary = await load_sample(session)
            finally:
                await engine.dispose()
            if summary.loaded:
                console.print(
                    f"sample loaded: {summary.projects} projects, {summary.video_files} video "
                    f"files, {summary.hand_clips} hand clips, {summary.nas_files} NAS files"
                )
            else:
                console.print("sample already present")

        _run(_load)
    _show_overview(settings)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."),
    backup_first: bool = typer.Option(
        False, "--backup-first", help="Back up first (tagged pre-upgrade-REV); no backup, no run."
    ),
) -> None:
    """Upgrade the database to REVISION (default: head)."""
    outcome = _migrate(_settings(), "upgrade", revision, backup_first=backup_first)
    if outcome.applied:
        console.print(
            f"upgraded {outcome.from_revision or 'base'} → {outcome.to_revision}: "
            f"{', '.join(outcome.applied)}"
        )
    else:
        console.print(f"already at {outcome.to_revision}")


@app.command()
def downgrade(
    revision: str = typer.Argument("-1", help="Target revision (default: one step)."),
) -> None:
    """Downgrade the database to REVISION (default: one step back)."""
    outcome = _migrate(_settings(), "downgrade", revision)
    console.print(f"downgraded {outcome.from_revision} → {outcome.to_revision or 'base'}")


@app.command()
def current() -> None:
    """Print the database's current revision."""
    revision = migrate.current(_settings())
    head = migrate.head_revision()
    console.print(f"{revision or '(empty)'}{' (head)' if revision == head else ''}")


@app.command()
def history() -> None:
    """List the migration revisions, oldest first."""
    head = migrate.head_revision()
    for info in migrate.history():
        marker = " (head)" if info.revision == head else ""
        console.print(f"{info.down_revision or '<base>'} -> {info.revision}{marker}: {info.doc}")


@app.command()
def revision(
    message: str = typer.Option(..., "-m", "--message", help="What the revision does."),
    autogenerate: bool = typer.Option(False, "--autogenerate", help="Compare models and database."),
) -> None:
    """Create a new migration script."""
    path = migrate.new_revision(_settings(), message, autogenerate=autogenerate)
    console.print(f"created {path}")


@app.command()
def check() -> None:
    """Exit 1 and list the differences when the database and the models differ."""
    differences = migrate.drift(_settings())
    if not differences:
        console.print("no differences: the database matches the models")
        return
    for line in differences:
        console.print(f"- {line}", markup=False)
    raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL server (its data stays)."""
    settings = _settings()
    if not settings.uses_embedded:
        raise PokervodDBError("DATABASE_URL is set: there is no embedded server to stop")
    embedded.stop(settings)
    console.print(f"stopped the embedded server in {settings.embedded_data_dir}")


# --- backup and restore (pokervod_db.backup) ---------------------------------------------

backup_app = typer.Typer(
    help="Back up schema pokervod (no subcommand), or verify, list and prune backups.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(backup_app, name="backup")


def _size(n: int) -> str:
    """Bytes for humans (kB, MB, GB; powers of 1000 like the manifest's size_mb)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= factor:
            return f"{n / factor:,.1f} {unit}"
    return f"{n} B"


def _progress_display(enabled: bool) -> Any:
    """A Rich progress bar on stderr when it is a terminal; None (quiet) otherwise."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    if not enabled or not err_console.is_terminal:
        return None
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[tables]}"),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )


def _with_progress(enabled: bool, work: Callable[[Any], T]) -> T:
    """Run ``work(callback)`` with a progress callback feeding the display (or None)."""
    display = _progress_display(enabled)
    if display is None:
        return work(None)
    from pokervod_db.backup import Progress as Step

    task = display.add_task("starting", total=None, tables="")

    def update(step: Step) -> None:
        tables = f"tables {step.tables_done}/{step.tables_total}" if step.tables_total else ""
        display.update(
            task,
            description=step.phase,
            completed=step.bytes_done,
            total=step.bytes_total,
            tables=tables,
        )

    with display:
        return work(update)


@backup_app.callback()
def backup(
    ctx: typer.Context,
    fmt: str = typer.Option(
        "custom", "--format", help="custom (one file) or directory (parallel --jobs)."
    ),
    compression: str | None = typer.Option(
        None, "--compression", help="zstd[:N] (default), gzip[:N], lz4[:N] or none."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel dump jobs (directory format)."),
    tag: str | None = typer.Option(None, "--tag", help="A label stored in the manifest."),
    no_upload: bool = typer.Option(False, "--no-upload", help="Do not copy to S3."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Back up schema pokervod into BACKUP_DIR (when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings()
    result = _with_progress(
        not as_json,
        lambda progress: _with_agent(
            lambda agent: agent.backup_database(
                fmt=fmt,
                compression=compression,
                jobs=jobs,
                tag=tag,
                upload=not no_upload,
                progress=progress,
            )
        ),
    )
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"backup written: {result.file} ({_size(result.size_bytes)}, {result.compression}, "
        f"revision {result.revision}, {result.duration_s:.1f} s)",
        markup=False,
        soft_wrap=True,
    )
    console.print(f"sha256 {result.sha256}", markup=False, soft_wrap=True)
    if result.s3_key:
        console.print(f"copied to s3://{settings.backup_s3_bucket}/{result.s3_key}", markup=False)


@backup_app.command("verify")
def backup_verify(
    file: Path = typer.Argument(..., help="The archive to verify."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Restore FILE into a scratch database and compare it with its manifest."""
    result = _with_progress(
        not as_json,
        lambda progress: _with_agent(lambda agent: agent.verify_backup(file, progress=progress)),
    )
    if as_json:
        print_json(result.to_dict())
        return
    rows = sum(result.row_counts.values())
    console.print(
        f"verified: {result.file.name} restores completely ({rows:,} rows in "
        f"{len(result.row_counts)} tables, counts and checksums match, {result.duration_s:.1f} s)",
        markup=False,
        soft_wrap=True,
    )


@backup_app.command("list")
def backup_list(
    remote: bool = typer.Option(False, "--remote", help="List the copies in BACKUP_S3_BUCKET."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """List the backups in BACKUP_DIR (or the bucket), newest first."""
    from pokervod_db.backup import list_backups, storage

    settings = _settings()
    if remote:
        if not storage.configured(settings):
            raise PokervodDBError("BACKUP_S3_BUCKET is not set: there is no bucket to list")
        names = [n.removesuffix(".manifest.json") for n in storage.list_remote(settings)]
        if as_json:
            print_json({"bucket": settings.backup_s3_bucket, "backups": names})
        else:
            for name in names:
                console.print(name, markup=False)
        return
    backups = list_backups(settings)
    if as_json:
        print_json(
            {"backup_dir": str(settings.backup_dir), "backups": [b.to_dict() for b in backups]}
        )
        return
    if not backups:
        console.print(f"no backups in {settings.backup_dir}", markup=False)
        return
    table = Table("backup", "taken (UTC)", "size", "revision", "verified", "tag / problem")
    for column in table.columns[:5]:
        column.no_wrap = True
    for b in backups:
        if b.verified_ok is None:
            verified = "no"
        else:
            verified = f"{'yes' if b.verified_ok else 'FAILED'} {b.verified_at:%Y-%m-%d %H:%M}"
        table.add_row(
            b.file.name if b.file else b.name,
            f"{b.started_at:%Y-%m-%d %H:%M:%S}" if b.started_at else "?",
            _size(b.size_bytes) if b.size_bytes is not None else "-",
            b.revision or "-",
            verified,
            b.problem or b.tag or "",
        )
    console.print(table)


@backup_app.command("prune")
def backup_prune(
    keep_daily: int = typer.Option(7, "--keep-daily", help="Newest backup of each of N days."),
    keep_weekly: int = typer.Option(4, "--keep-weekly", help="Newest backup of each of M weeks."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be deleted."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Delete old backups; the newest verified backup is always kept."""
    from pokervod_db.backup import prune_backups

    result = prune_backups(
        _settings(), keep_daily=keep_daily, keep_weekly=keep_weekly, dry_run=dry_run
    )
    if as_json:
        print_json(result.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    for b in result.deleted:
        console.print(f"{verb} {b.name}", markup=False)
    console.print(f"{verb} {len(result.deleted)}, kept {len(result.kept)}", markup=False)


@backup_app.command("fetch")
def backup_fetch(
    name: str = typer.Argument(..., help="Archive file name in the bucket."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Download a backup from BACKUP_S3_BUCKET into BACKUP_DIR, checking its sha256."""
    from pokervod_db.backup import storage

    settings = _settings()
    if not storage.configured(settings):
        raise PokervodDBError("BACKUP_S3_BUCKET is not set: there is no bucket to fetch from")
    path = storage.download(settings, name)
    if as_json:
        print_json({"file": str(path)})
        return
    console.print(f"fetched {path} (sha256 matches its manifest)", markup=False)


@app.command()
def restore(
    file: Path = typer.Argument(..., help="The archive to restore."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    no_safety_backup: bool = typer.Option(
        False, "--no-safety-backup", help="Skip the backup of the current data taken first."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Replace schema pokervod with FILE's content, atomically (all old or all new data)."""
    from pokervod_db.backup import check_archive

    settings = _settings()
    check = check_archive(settings, file)  # refuse a bad file before asking anything
    if not yes:
        if not sys.stdin.isatty():
            raise PokervodDBError(
                "restore replaces every row of schema pokervod; there is no terminal to ask for "
                "confirmation, so pass --yes"
            )
        manifest = check.manifest
        typer.confirm(
            f"Replace schema pokervod of {settings.masked_url()} with {check.path.name} "
            f"(revision {manifest.revision}, taken {manifest.started_at:%Y-%m-%d %H:%M} UTC, "
            f"{sum(manifest.row_counts.values()):,} rows)?",
            abort=True,
        )
    result = _with_progress(
        not as_json,
        lambda progress: _with_agent(
            lambda agent: agent.restore_database(
                file, safety_backup=not no_safety_backup, progress=progress
            )
        ),
    )
    if as_json:
        print_json(result.to_dict())
        return
    rows = sum(result.row_counts.values())
    console.print(
        f"restored {result.file.name}: {rows:,} rows in {len(result.row_counts)} tables, "
        f"revision {result.revision} ({result.duration_s:.1f} s)",
        markup=False,
        soft_wrap=True,
    )
    if result.safety_backup is not None:
        console.print(f"the previous data is in {result.safety_backup.file}", markup=False)
    if result.old_schema and not result.old_schema_dropped:
        console.print(
            f"schema {result.old_schema} (the old data) is still in use by a reader; "
            "the next restore drops it",
            markup=False,
        )
    if result.upgrade_needed:
        console.print(
            f"the restored revision {result.revision} is older than head "
            f"{result.head_revision}: run `pokervod-db upgrade`",
            markup=False,
        )


# --- agent: status, health, stats, events ---------------------------------------------------


def _quiet_agent_log() -> None:
    # The CLI prints the agent's results itself; its log lines would repeat them on stderr.
    logging.getLogger("pokervod_db.agent").setLevel(logging.ERROR)


def _with_agent(fn: Callable[[DatabaseAgent], Coroutine[Any, Any, T]]) -> T:
    settings = _settings()
    _quiet_agent_log()

    async def _go() -> T:
        async with DatabaseAgent(settings) as agent:
            return await fn(agent)

    return _run(_go)


def _migrate(
    settings: Settings, direction: str, target: str, *, backup_first: bool = False
) -> migrate.MigrationOutcome:
    """Migrate through the agent, so other processes receive ``db.migration.completed``."""
    _quiet_agent_log()

    async def _go() -> MigrationResult:
        async with DatabaseAgent(settings) as agent:
            return await agent.run_migration(direction, target, backup_first=backup_first)

    result = _run(_go)
    if result.backup is not None:
        console.print(f"backup taken first: {result.backup}", markup=False)
    if not result.success:
        raise PokervodDBError(result.error or f"the {direction} failed")
    return migrate.MigrationOutcome(direction, result.from_version, result.version, result.applied)


def _print_status(status: MigrationStatus) -> None:
    console.print(f"database: {status.database}", markup=False, highlight=False)
    state = "at head" if status.at_head else f"head is {status.head}"
    console.print(f"revision: {status.current or '(empty)'} ({state})", highlight=False)
    if status.pending:
        console.print(
            f"pending:  {', '.join(status.pending)} (run `pokervod-db upgrade`)",
            markup=False,
            highlight=False,
        )
    if status.note:
        console.print(f"note:     {status.note}", markup=False, highlight=False)
    if status.drift_checked:
        if status.drift:
            console.print(f"drift:    {len(status.drift)} differences from the models:")
            for line in status.drift:
                console.print(f"  - {line}", markup=False, highlight=False)
        else:
            console.print("drift:    none (the database matches the models)")


def _print_health(report: HealthReport) -> None:
    for check in report.checks:
        mark = "OK" if check.ok else ("FAIL" if check.critical else "WARN")
        style = "green" if check.ok else ("red" if check.critical else "yellow")
        console.print(
            f"[{style}]{mark:<5}[/{style}] {check.name:<13} {escape(check.detail)}",
            highlight=False,
            soft_wrap=True,
        )
    if report.healthy:
        console.print("[green]healthy[/green]")
    else:
        failed = ", ".join(report.failed) or "reachable"
        console.print(f"[red]UNHEALTHY[/red] (failed: {failed})")


def _when(*values: datetime | None) -> str:
    known = [v for v in values if v is not None]
    return max(known).strftime("%Y-%m-%d") if known else "never"


def _print_stats(stats: DatabaseStats) -> None:
    exact = any(t.exact_rows is not None for t in stats.tables.values())
    table = Table(
        title=f"{stats.database}: {human_bytes(stats.database_bytes)}",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("table", no_wrap=True)
    table.add_column("rows" if exact else "rows~", justify="right")
    table.add_column("total", justify="right", no_wrap=True)
    table.add_column("indexes", justify="right", no_wrap=True)
    table.add_column("seq/idx", justify="right")
    table.add_column("dead", justify="right")
    table.add_column("vacuum/analyze", no_wrap=True)
    for t in stats.tables.values():
        rows = t.exact_rows if t.exact_rows is not None else t.row_estimate
        table.add_row(
            t.name,
            f"{rows:,}",
            human_bytes(t.total_bytes),
            human_bytes(t.index_bytes),
            f"{t.seq_scans:,}/{t.idx_scans:,}",
            f"{t.dead_tuples:,}",
            _when(t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze),
        )
    console.print(table)

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 100:.1f} %"

    console.print(
        f"cache hit ratio: {pct(stats.cache_hit_ratio)} (database), "
        f"{pct(stats.table_cache_hit_ratio)} (schema tables and indexes)",
        highlight=False,
    )
    unused = stats.indexes.unused
    plain = [i for i in unused if not (i.unique or i.primary)]
    console.print(
        f"indexes never scanned: {len(unused)} ({len(plain)} not enforcing a unique rule)",
        highlight=False,
    )
    for dup in stats.indexes.duplicates:
        console.print(
            f"duplicate indexes on {dup.table} ({', '.join(dup.columns)}): "
            f"{', '.join(dup.indexes)}",
            markup=False,
            highlight=False,
        )
    top = stats.top_statements
    if top is not None and top.available and top.statements:
        statements = Table(title="top statements", box=box.SIMPLE_HEAD, pad_edge=False)
        statements.add_column("total ms", justify="right", no_wrap=True)
        statements.add_column("calls", justify="right", no_wrap=True)
        statements.add_column("mean ms", justify="right", no_wrap=True)
        statements.add_column("statement", no_wrap=True, overflow="ellipsis", max_width=52)
        for st in top.statements:
            statements.add_row(
                f"{st.total_ms:,.1f}", f"{st.calls:,}", f"{st.mean_ms:,.2f}", escape(st.query)
            )
        console.print(statements)
    elif top is not None and top.note:
        console.print(f"top statements: {top.note}", markup=False, highlight=False, soft_wrap=True)


def _show_overview(settings: Settings) -> None:
    """What `up` shows after migrating: status, health and statistics."""

    async def _collect() -> tuple[MigrationStatus, HealthReport, DatabaseStats]:
        async with DatabaseAgent(settings) as agent:
            return (
                await agent.get_migration_status(),
                await agent.health(),
                await agent.get_database_stats(top=5),
            )

    status_, report, stats_ = _run(_collect)
    _print_status(status_)
    _print_health(report)
    _print_stats(stats_)


_JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object (fields in the README).")


@app.command()
def status(as_json: bool = _JSON_OPTION) -> None:
    """Show the migration status: current and head revision, pending revisions, drift."""
    result = _with_agent(lambda agent: agent.get_migration_status())
    if as_json:
        print_json(result.to_dict())
    else:
        _print_status(result)


@app.command()
def health(as_json: bool = _JSON_OPTION) -> None:
    """Check the database; exit 0 when healthy, 1 when not (one line per check)."""
    report = _with_agent(lambda agent: agent.health())
    if as_json:
        print_json(report.to_dict())
    else:
        _print_health(report)
    raise typer.Exit(0 if report.healthy else 1)


@app.command()
def stats(
    as_json: bool = _JSON_OPTION,
    exact: bool = typer.Option(False, "--exact", help="Count rows with count(*) (slower)."),
    top: int = typer.Option(5, "--top", min=0, help="How many top statements to show."),
) -> None:
    """Table sizes, rows, scans, vacuum state, index usage and cache hit ratio."""
    result = _with_agent(lambda agent: agent.get_database_stats(exact=exact, top=top))
    if as_json:
        print_json(result.to_dict())
    else:
        _print_stats(result)


@app.command()
def events(
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new events."),
    since: int | None = typer.Option(
        None, "--since", min=0, help="Replay the events stored after this id first."
    ),
    types: list[str] | None = typer.Option(None, "--type", "-t", help="Only this type (repeat)."),
) -> None:
    """Print stored events as JSON lines; with --follow, also those other processes emit."""
    settings = _settings()

    def _line(event: Event) -> None:
        sys.stdout.write(to_json(event.to_dict()) + "\n")
        sys.stdout.flush()

    if not follow:
        for event in _run(lambda: read_events(settings, since_id=since or 0, types=types)):
            _line(event)
        return

    def _ready(last_id: int) -> None:
        err_console.print(
            f"following events on {settings.masked_url()} after id {last_id} (Ctrl-C stops)",
            markup=False,
            highlight=False,
        )

    async def _follow() -> None:
        async for event in listen(settings, since_id=since, types=types, on_connected=_ready):
            _line(event)

    try:
        _run(_follow)
    except KeyboardInterrupt:
        return


@app.command()
def serve(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."
    ),
    port: int = typer.Option(8080, "--port", help="TCP port (0: any free port)."),
) -> None:
    """Serve probes, Prometheus metrics, the JSON API and a status page (read-only)."""
    try:
        from pokervod_db.web.server import is_loopback, run
    except ImportError as exc:
        raise PokervodDBError(
            f"pokervod-db serve needs the serve extra ({exc.name} is missing): "
            "pip install 'pokervod-db[serve]'"
        ) from exc
    settings = _started()

    def listening(url: str) -> None:
        console.print(f"serving {settings.masked_url()} on {url} (Ctrl-C stops)", markup=False)
        if not is_loopback(host):
            err_console.print(
                f"note: listening on {host}: anyone who can reach it can read the status page",
                markup=False,
                highlight=False,
            )

    try:
        run(settings, host=host, port=port, on_listening=listening)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a foreground server ends: uvicorn has shut down cleanly


def print_json(value: Any) -> None:
    """One JSON object on stdout (for `--json` options)."""
    sys.stdout.write(json.dumps(value, default=str) + "\n")


def main() -> None:
    """Console entry point: run the app, turning expected failures into one line and exit 1."""
    try:
        app()
    except PokervodDBError as exc:
        err_console.print(f"FAILED: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("FAILED: interrupted", highlight=False)
        sys.exit(130)
