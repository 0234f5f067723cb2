"""Backup and restore: ``backup`` (and its verify, list, prune, fetch) and ``restore``."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pokervod_db.errors import PokervodDBError
from pokervod_db.settings import Settings, load_settings

from .dispatch import with_agent
from .options import ArchiveArgument, JsonOption, YesOption

if TYPE_CHECKING:
    from pokervod_db.backup.checks import ArchiveCheck

from .render import backup_progress, human_bytes, print_backup_list, print_json, say

# Top-level commands of this area (restore); the ``backup`` group is ``backup_app``.
app = typer.Typer()

backup_app = typer.Typer(
    help="Back up schema pokervod (no subcommand), or verify, list, prune and fetch backups.",
    invoke_without_command=True,
    no_args_is_help=False,
)

# The options of ``backup`` itself, as their parameter names; a subcommand would ignore them.
_CREATE_OPTIONS = {
    "fmt": "--format",
    "compression": "--compression",
    "jobs": "--jobs",
    "tag": "--tag",
    "no_upload": "--no-upload",
    "as_json": "--json",
    "physical": "--physical",
    "full": "--full",
}


def _refuse_create_options(ctx: typer.Context) -> None:
    """Refuse ``backup --format directory list``: the option would be silently ignored."""
    # Compared by name: Typer 0.12 returns click's ParameterSource, newer ones their own copy.
    given = [
        flag
        for name, flag in _CREATE_OPTIONS.items()
        if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") != "DEFAULT"
    ]
    if given:
        sub = ctx.invoked_subcommand
        where = " (put --json after the subcommand)" if "--json" in given else ""
        raise PokervodDBError(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to "
            f"`backup` itself, not to `backup {sub}`{where}"
        )


@backup_app.callback()
def backup(
    ctx: typer.Context,
    fmt: Annotated[
        str, typer.Option("--format", help="custom (one file) or directory (parallel --jobs).")
    ] = "custom",
    compression: Annotated[
        str | None,
        typer.Option("--compression", help="zstd[:N] (default), gzip[:N], lz4[:N] or none."),
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Parallel dump jobs (directory format).")
    ] = 1,
    tag: Annotated[
        str | None, typer.Option("--tag", help="A label stored in the manifest.")
    ] = None,
    no_upload: Annotated[bool, typer.Option("--no-upload", help="Do not copy to S3.")] = False,
    physical: Annotated[
        bool,
        typer.Option(
            "--physical",
            help="A verified base backup of the whole server (pg_basebackup; for PITR).",
        ),
    ] = False,
    full: Annotated[
        bool,
        typer.Option("--full", help="With --physical: full, even if one could be incremental."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Back up schema pokervod into BACKUP_DIR (when no subcommand is given)."""
    if ctx.invoked_subcommand is not None:
        _refuse_create_options(ctx)
        return
    # The library names its parameters; these say the same in the words of this command.
    if jobs < 1:
        raise PokervodDBError(f"--jobs must be at least 1, not {jobs}")
    if jobs > 1 and fmt != "directory":
        raise PokervodDBError("--jobs above 1 needs --format directory")
    settings = load_settings()
    if physical:
        _physical_backup(settings, full=full, as_json=as_json)
        return
    with backup_progress(not as_json) as progress:
        result = with_agent(
            lambda agent: agent.backup_database(
                fmt=fmt,
                compression=compression,
                jobs=jobs,
                tag=tag,
                upload=not no_upload,
                progress=progress,
            ),
            settings,
        )
    if as_json:
        print_json(result.to_dict())
        return
    say(
        f"backup written: {result.file} ({human_bytes(result.size_bytes)}, "
        f"{result.compression}, revision {result.revision}, {result.duration_s:.1f} s)"
    )
    say(f"sha256 {result.sha256}")
    if result.s3_key:
        say(f"copied to s3://{settings.backup_s3_bucket}/{result.s3_key}")


def _physical_backup(settings: Settings, *, full: bool, as_json: bool) -> None:
    from pokervod_db.backup.physical import create_physical_backup

    result = create_physical_backup(settings, full=full)
    if as_json:
        print_json(result.to_dict())
        return
    parent = f" on top of {result.parent}" if result.parent else ""
    say(
        f"{result.kind} base backup written: {result.path}{parent} "
        f"({human_bytes(result.size_bytes)}, {result.duration_s:.1f} s, start {result.start_lsn} "
        f"at {result.start_time:%Y-%m-%d %H:%M:%S} UTC), verified by pg_verifybackup"
    )
    if result.note:
        say(result.note)


@backup_app.command("verify")
def backup_verify(file: ArchiveArgument, as_json: JsonOption = False) -> None:
    """Restore FILE into a scratch database and compare it with its manifest."""
    with backup_progress(not as_json) as progress:
        result = with_agent(lambda agent: agent.verify_backup(file, progress=progress))
    if as_json:
        print_json(result.to_dict())
        return
    rows = sum(result.row_counts.values())
    say(
        f"verified: {result.file.name} restores completely ({rows:,} rows in "
        f"{len(result.row_counts)} tables, counts and checksums match, {result.duration_s:.1f} s)"
    )


@backup_app.command("list")
def backup_list(
    remote: Annotated[
        bool, typer.Option("--remote", help="List the copies in BACKUP_S3_BUCKET.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List the backups in BACKUP_DIR (or the bucket), newest first."""
    from pokervod_db.backup import list_backups, storage

    settings = load_settings()
    if remote:
        if not storage.configured(settings):
            raise PokervodDBError("BACKUP_S3_BUCKET is not set: there is no bucket to list")
        names = [n.removesuffix(".manifest.json") for n in storage.list_remote(settings)]
        if as_json:
            print_json({"bucket": settings.backup_s3_bucket, "backups": names})
        else:
            for name in names:
                say(name)
        return
    from pokervod_db.backup.physical import list_physical, recoverable_window

    backups = list_backups(settings)
    physical = list(reversed(list_physical(settings)))
    window = recoverable_window(settings)
    if as_json:
        print_json(
            {
                "backup_dir": str(settings.backup_dir),
                "backups": [b.to_dict() for b in backups],
                "physical": [b.to_dict() for b in physical],
                "recoverable_window": window.to_dict(),
            }
        )
        return
    if not backups and not physical:
        say(f"no backups in {settings.backup_dir}")
    elif backups:
        print_backup_list(backups)
    for b in physical:
        verified = "verified" if b.verified else "NOT VERIFIED"
        say(
            f"physical {b.name}: {b.kind}, {human_bytes(b.size_bytes)}, start {b.start_lsn}, "
            f"{verified}"
        )
    if window.earliest is not None:
        latest = f"{window.latest:%Y-%m-%d %H:%M:%S}" if window.latest else "?"
        say(
            f"recoverable (restore --physical --to-time): {window.earliest:%Y-%m-%d %H:%M:%S} "
            f"to {latest} UTC, plus what the server has not archived yet "
            f"({window.wal_segments} WAL segments, {human_bytes(window.wal_bytes)})"
        )


@backup_app.command("prune")
def backup_prune(
    keep_daily: Annotated[
        int, typer.Option("--keep-daily", help="Newest backup of each of N days.")
    ] = 7,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", help="Newest backup of each of M weeks.")
    ] = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be deleted.")
    ] = False,
    keep_full: Annotated[
        int,
        typer.Option(
            "--keep-full", help="Physical: newest N full base backups (with their incrementals)."
        ),
    ] = 2,
    as_json: JsonOption = False,
) -> None:
    """Delete old backups; the newest verified backup is always kept, and archived WAL only
    when no kept base backup needs it."""
    from pokervod_db.backup import prune_backups
    from pokervod_db.backup.physical import list_physical, prune_physical

    if keep_daily < 0 or keep_weekly < 0:
        raise PokervodDBError("--keep-daily and --keep-weekly cannot be negative")
    if keep_daily == 0 and keep_weekly == 0:
        raise PokervodDBError(
            "--keep-daily 0 and --keep-weekly 0 would delete every backup but the newest "
            "verified one; keep at least one day or week"
        )
    settings = load_settings()
    result = prune_backups(
        settings, keep_daily=keep_daily, keep_weekly=keep_weekly, dry_run=dry_run
    )
    physical = (
        prune_physical(settings, keep_full=keep_full, dry_run=dry_run)
        if list_physical(settings)
        else None
    )
    if as_json:
        data = result.to_dict()
        data["physical"] = physical.to_dict() if physical else None
        print_json(data)
        return
    verb = "would delete" if dry_run else "deleted"
    for b in result.deleted:
        say(f"{verb} {b.name}")
    say(f"{verb} {len(result.deleted)}, kept {len(result.kept)}")
    if physical is not None:
        for name in physical.deleted:
            say(f"{verb} physical {name}")
        say(
            f"physical: {verb} {len(physical.deleted)}, kept {len(physical.kept)}; "
            f"{verb} {physical.wal_deleted} WAL segments before {physical.oldest_needed_wal}"
        )


@backup_app.command("fetch")
def backup_fetch(
    name: Annotated[str, typer.Argument(help="Archive file name in the bucket.")],
    as_json: JsonOption = False,
) -> None:
    """Download a backup from BACKUP_S3_BUCKET into BACKUP_DIR, checking its sha256."""
    from pokervod_db.backup import storage

    settings = load_settings()
    if not storage.configured(settings):
        raise PokervodDBError("BACKUP_S3_BUCKET is not set: there is no bucket to fetch from")
    path = storage.download(settings, name)
    if as_json:
        print_json({"file": str(path)})
        return
    say(f"fetched {path} (sha256 matches its manifest)")


def _confirm_restore(settings: Settings, check: ArchiveCheck) -> None:
    """Ask before replacing every row; refuse (rather than guess) when nobody can answer."""
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


@app.command()
def restore(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="The backup archive; with --physical, a base backup name (default: newest).",
            show_default=False,
        ),
    ] = None,
    yes: YesOption = False,
    no_safety_backup: Annotated[
        bool,
        typer.Option("--no-safety-backup", help="Skip the backup of the current data taken first."),
    ] = False,
    physical: Annotated[
        bool,
        typer.Option(
            "--physical", help="Rebuild the embedded server from base backups and archived WAL."
        ),
    ] = False,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time", help="With --physical: recover up to this time (ISO 8601; UTC if no zone)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replace schema pokervod with FILE's content, atomically (all old or all new data); with
    --physical, recover the whole embedded server to a point in time."""
    from pokervod_db.backup import check_archive

    settings = load_settings()
    if physical:
        _physical_restore(settings, file, to_time=to_time, yes=yes, as_json=as_json)
        return
    if to_time is not None:
        raise PokervodDBError("--to-time needs --physical (an archive restores as it was taken)")
    if file is None:
        raise PokervodDBError("restore needs FILE, the backup archive (or --physical)")
    check = check_archive(settings, file)  # refuse a bad file before asking anything
    if not yes:
        _confirm_restore(settings, check)
    with backup_progress(not as_json) as progress:
        result = with_agent(
            lambda agent: agent.restore_database(
                file, safety_backup=not no_safety_backup, progress=progress
            ),
            settings,
        )
    if as_json:
        print_json(result.to_dict())
        return
    rows = sum(result.row_counts.values())
    say(
        f"restored {result.file.name}: {rows:,} rows in {len(result.row_counts)} tables, "
        f"revision {result.revision} ({result.duration_s:.1f} s)"
    )
    if result.safety_backup is not None:
        say(f"the previous data is in {result.safety_backup.file}")
    if result.old_schema and not result.old_schema_dropped:
        say(
            f"schema {result.old_schema} (the old data) is still in use by a reader; "
            "the next restore drops it"
        )
    if result.upgrade_needed:
        say(
            f"the restored revision {result.revision} is older than head "
            f"{result.head_revision}: run `pokervod-db upgrade`"
        )


def _parse_time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PokervodDBError(
            f"--to-time {text!r} is not a time; use ISO 8601, e.g. 2026-11-29T07:30:00Z"
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _physical_restore(
    settings: Settings, backup: Path | None, *, to_time: str | None, yes: bool, as_json: bool
) -> None:
    from pokervod_db.backup.physical import EXTERNAL_STEPS, restore_physical

    target = _parse_time(to_time) if to_time is not None else None
    if not settings.uses_embedded:
        say(EXTERNAL_STEPS)
        raise PokervodDBError(
            f"restore --physical rebuilds only the embedded server, not {settings.masked_url()}; "
            "follow the steps above on that server"
        )
    if not yes:
        if not sys.stdin.isatty():
            raise PokervodDBError(
                "restore --physical stops the server and replaces its data directory; there is "
                "no terminal to ask for confirmation, so pass --yes"
            )
        until = target.isoformat() if target else "the end of the WAL archive"
        typer.confirm(
            f"Stop the embedded server in {settings.embedded_data_dir}, move its data aside and "
            f"recover up to {until}?",
            abort=True,
        )
    result = restore_physical(settings, backup=backup, to_time=target)
    if as_json:
        print_json(result.to_dict())
        return
    until = result.to_time.isoformat() if result.to_time else "the end of the archive"
    say(
        f"restored {' + '.join(result.chain)} up to {until}: {result.checked}, timeline "
        f"{result.timeline} ({result.duration_s:.1f} s)"
    )
    if result.old_data_dir is not None:
        say(f"the old data directory is in {result.old_data_dir}; remove it once satisfied")
