"""Progress of long backups, restores and verifications, reported to an optional callback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("pokervod_db.backup")


@dataclass(frozen=True)
class Progress:
    """One step of an operation: the phase, tables done of total, and bytes done of total."""

    phase: str
    tables_done: int = 0
    tables_total: int = 0
    bytes_done: int = 0
    bytes_total: int | None = None


ProgressFn = Callable[[Progress], None]


def report(progress: ProgressFn | None, event: Progress) -> None:
    """Call the callback; a failing display is logged and never breaks the operation."""
    if progress is None:
        return
    try:
        progress(event)
    except Exception:
        log.warning("progress callback failed", exc_info=True)
