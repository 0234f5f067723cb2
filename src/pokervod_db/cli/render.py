"""Everything the CLI prints: the consoles, JSON, the byte formatter and Rich tables.

Commands decide *what* to show; this module decides *how*. Output that scripts read (``--json``,
``events``) goes through :func:`print_json` / :func:`print_json_line`, so it is always the
library's own JSON (``events.to_json``: ISO 8601 times, paths and UUIDs as text).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pokervod_db.events import to_json

if TYPE_CHECKING:
    from pokervod_db.backup import BackupInfo
    from pokervod_db.backup import Progress as BackupProgress
    from pokervod_db.health import HealthReport, MigrationStatus
    from pokervod_db.stats import DatabaseStats

# soft_wrap: a long line (a path, an error) stays one line when the output is not a terminal;
# tables get 160 columns there (a pipe, cron mail, CI log) instead of Rich's 80, so none is cut.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)

_IEC_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(size: int | None) -> str:
    """A size for humans in powers of 1024 with IEC units (``"8.0 KiB"``), the one the CLI uses.

    IEC units say which base they count in, so a reader never has to guess whether "MB" means
    10**6 or 2**20 (pg_size_pretty writes "kB" for 1024 bytes; JSON output keeps exact bytes).
    """
    if size is None:
        return "-"
    if abs(size) < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in _IEC_UNITS[:-1]:
        if abs(value) < 1024:
            return f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} {_IEC_UNITS[-1]}"


def print_json(value: Any) -> None:
    """One JSON object on stdout: what every ``--json`` option prints."""
    sys.stdout.write(to_json(value) + "\n")


def print_json_line(value: Any) -> None:
    """One JSON line on stdout, flushed at once (a follower reads each event when it happens)."""
    sys.stdout.write(to_json(value) + "\n")
    sys.stdout.flush()


def say(text: str) -> None:
    """A plain line on stdout: no Rich markup or highlighting (paths and names print as they are)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def note(text: str) -> None:
    """A plain line on stderr, for messages that must not mix with a command's output."""
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def failed(message: str) -> None:
    """The one line an expected failure prints."""
    note(f"FAILED: {message}")


# --- progress ---------------------------------------------------------------------------------


@contextmanager
def backup_progress(enabled: bool) -> Iterator[Callable[[BackupProgress], None] | None]:
    """A progress callback feeding a Rich bar on stderr when it is a terminal; None otherwise."""
    if not enabled or not err_console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[tables]}"),
        DownloadColumn(binary_units=True),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    task = display.add_task("starting", total=None, tables="")

    def update(step: BackupProgress) -> None:
        tables = f"tables {step.tables_done}/{step.tables_total}" if step.tables_total else ""
        display.update(
            task,
            description=step.phase,
            completed=step.bytes_done,
            total=step.bytes_total,
            tables=tables,
        )

    with display:
        yield update


# --- migration status, health, statistics -----------------------------------------------------


def print_status(status: MigrationStatus) -> None:
    say(f"database: {status.database}")
    state = "at head" if status.at_head else f"head is {status.head}"
    say(f"revision: {status.current or '(empty)'} ({state})")
    if status.pending:
        say(f"pending:  {', '.join(status.pending)} (run `pokervod-db upgrade`)")
    if status.note:
        say(f"note:     {status.note}")
    if status.drift_checked:
        if status.drift:
            say(f"drift:    {len(status.drift)} differences from the models:")
            for line in status.drift:
                say(f"  - {line}")
        else:
            say("drift:    none (the database matches the models)")


def print_health(report: HealthReport) -> None:
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
        failed_checks = ", ".join(report.failed) or "reachable"
        console.print(f"[red]UNHEALTHY[/red] (failed: {escape(failed_checks)})")


def _when(*values: datetime | None) -> str:
    known = [v for v in values if v is not None]
    return max(known).strftime("%Y-%m-%d") if known else "never"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def print_stats(stats: DatabaseStats) -> None:
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
            escape(t.name),
            f"{rows:,}",
            human_bytes(t.total_bytes),
            human_bytes(t.index_bytes),
            f"{t.seq_scans:,}/{t.idx_scans:,}",
            f"{t.dead_tuples:,}",
            _when(t.last_vacuum, t.last_autovacuum, t.last_analyze, t.last_autoanalyze),
        )
    console.print(table)
    say(
        f"cache hit ratio: {_percent(stats.cache_hit_ratio)} (database), "
        f"{_percent(stats.table_cache_hit_ratio)} (schema tables and indexes)"
    )
    unused = stats.indexes.unused
    plain = [i for i in unused if not (i.unique or i.primary)]
    say(f"indexes never scanned: {len(unused)} ({len(plain)} not enforcing a unique rule)")
    for dup in stats.indexes.duplicates:
        say(
            f"duplicate indexes on {dup.table} ({', '.join(dup.columns)}): {', '.join(dup.indexes)}"
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
        say(f"top statements: {top.note}")


# --- backups ----------------------------------------------------------------------------------


def print_backup_list(backups: list[BackupInfo]) -> None:
    table = Table("backup", "taken (UTC)", "size", "revision", "verified", "tag / problem")
    for column in table.columns[:5]:
        column.no_wrap = True
    for b in backups:
        if b.verified_ok is None:
            verified = "no"
        else:
            when = f" {b.verified_at:%Y-%m-%d %H:%M}" if b.verified_at else ""
            verified = f"{'yes' if b.verified_ok else 'FAILED'}{when}"
        table.add_row(
            escape(b.file.name if b.file else b.name),
            f"{b.started_at:%Y-%m-%d %H:%M:%S}" if b.started_at else "?",
            human_bytes(b.size_bytes),
            escape(b.revision or "-"),
            verified,
            escape(b.problem or b.tag or ""),
        )
    console.print(table)
