"""Backup and restore: ``backup`` (and its verify, list, prune, fetch) and ``restore``."""

from __future__ import annotations

import sys
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
    backups = list_backups(settings)
    if as_json:
        print_json(
            {"backup_dir": str(settings.backup_dir), "backups": [b.to_dict() for b in backups]}
        )
    elif not backups:
        say(f"no backups in {settings.backup_dir}")
    else:
        print_backup_list(backups)


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
    as_json: JsonOption = False,
) -> None:
    """Delete old backups; the newest verified backup is always kept."""
    from pokervod_db.backup import prune_backups

    if keep_daily < 0 or keep_weekly < 0:
        raise PokervodDBError("--keep-daily and --keep-weekly cannot be negative")
    if keep_daily == 0 and keep_weekly == 0:
        raise PokervodDBError(
            "--keep-daily 0 and --keep-weekly 0 would delete every backup but the newest "
            "verified one; keep at least one day or week"
        )
    result = prune_backups(
        load_settings(), keep_daily=keep_daily, keep_weekly=keep_weekly, dry_run=dry_run
    )
    if as_json:
        print_json(result.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    for b in result.deleted:
        say(f"{verb} {b.name}")
    say(f"{verb} {len(result.deleted)}, kept {len(result.kept)}")


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
    file: ArchiveArgument,
    yes: YesOption = False,
    no_safety_backup: Annotated[
        bool,
        typer.Option("--no-safety-backup", help="Skip the backup of the current data taken first."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Replace schema pokervod with FILE's content, atomically (all old or all new data)."""
    from pokervod_db.backup import check_archive

    settings = load_settings()
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
