"""Progress of long backups, restores and verifications, reported to an optional callback."""

from __future__ import annotations

import logging
import time
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


class Throttle:
    """True at most every ``interval_s`` seconds: byte counters report often, displays need less."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self._interval = interval_s
        self._last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self._interval:
            return False
        self._last = now
        return True
