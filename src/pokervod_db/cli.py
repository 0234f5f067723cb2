"""The ``pokervod-db`` command: one subcommand per operation, dispatch and printing only.

Expected failures (bad settings, unreachable server, lock held, failed migration) print one
``FAILED: …`` line on stderr and exit 1; nothing else is printed for them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pokervod_db import embedded, migrate
from pokervod_db.database import (
    async_session_factory,
    check_connection,
    create_engine,
    transaction,
)
from pokervod_db.errors import PokervodDBError
from pokervod_db.settings import Settings

app = typer.Typer(
    help="pokervod-db: the database layer of the pokervod archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise PokervodDBError(f"invalid settings: {first['msg']}") from exc


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
    outcome = migrate.upgrade(settings)
    if outcome.applied:
        console.print(f"applied {', '.join(outcome.applied)}")
    if sample:
        from pokervod_db.sample import load_sample

        async def _load() -> None:
            engine = create_engine(settings)
            try:
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
    _show_tables(settings)


def _show_tables(settings: Settings) -> None:
    from pokervod_db.stats import exact_row_counts

    async def _counts() -> dict[str, int]:
        engine = create_engine(settings)
        try:
            await check_connection(engine, wait_s=settings.connect_timeout + 5)
            async with engine.connect() as conn:
                return await exact_row_counts(conn)
        finally:
            await engine.dispose()

    counts = _run(_counts)
    revision = migrate.current(settings)
    head = migrate.head_revision()
    state = "at head" if revision == head else f"head is {head}"
    console.print(f"database: {settings.masked_url()}")
    console.print(f"revision: {revision or '(empty)'} ({state})")
    table = Table("table", "rows")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    console.print(table)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Upgrade the database to REVISION (default: head)."""
    outcome = migrate.upgrade(_settings(), revision)
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
    outcome = migrate.downgrade(_settings(), revision)
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
    from pokervod_db.backup import create_backup

    settings = _settings()
    result = _with_progress(
        not as_json,
        lambda progress: create_backup(
            settings,
            fmt=fmt,
            compression=compression,
            jobs=jobs,
            tag=tag,
            upload=not no_upload,
            progress=progress,
        ),
    )
    if as_json:
        print_json(result.to_dict())
        return
    console.print(
        f"backup written: {result.file} ({result.size_mb:,.1f} MB, {result.compression}, "
        f"revision {result.revision}, {result.duration_s:.1f} s)",
        markup=False,
    )
    console.print(f"sha256 {result.sha256}", markup=False)
    if result.s3_key:
        console.print(f"copied to s3://{settings.backup_s3_bucket}/{result.s3_key}", markup=False)


@backup_app.command("verify")
def backup_verify(
    file: Path = typer.Argument(..., help="The archive to verify."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Restore FILE into a scratch database and compare it with its manifest."""
    from pokervod_db.backup import verify_backup

    settings = _settings()
    result = _with_progress(
        not as_json, lambda progress: verify_backup(settings, file, progress=progress)
    )
    if as_json:
        print_json(result.to_dict())
        return
    rows = sum(result.row_counts.values())
    console.print(
        f"verified: {result.file.name} restores completely ({rows:,} rows in "
        f"{len(result.row_counts)} tables, counts and checksums match, {result.duration_s:.1f} s)",
        markup=False,
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
    for b in backups:
        if b.verified_ok is None:
            verified = "no"
        else:
            verified = f"{'yes' if b.verified_ok else 'FAILED'} {b.verified_at:%Y-%m-%d %H:%M}"
        table.add_row(
            b.file.name if b.file else b.name,
            f"{b.started_at:%Y-%m-%d %H:%M:%S}" if b.started_at else "?",
            f"{(b.size_bytes or 0) / 1_000_000:,.1f} MB" if b.size_bytes is not None else "-",
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
    from pokervod_db.backup import check_archive, restore_backup

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
        lambda progress: restore_backup(
            settings, archive=file, safety_backup=not no_safety_backup, progress=progress
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
