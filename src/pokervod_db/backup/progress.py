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


class PhaseTimer:
    """Wall time of each step of a long operation, logged so an operator sees where it went.

    A restore's time is spent in a few places (the data load, the index builds, the foreign key
    checks); without this, a slow restore can only be explained by re-running it under a
    profiler. ``steps`` keeps every step in order; ``summary()`` is one log line.
    """

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.steps: list[tuple[str, float]] = []
        self._last = time.monotonic()

    def lap(self, step: str) -> float:
        """Close ``step`` (the time since the previous lap) and return its seconds."""
        now = time.monotonic()
        elapsed = now - self._last
        self._last = now
        self.steps.append((step, elapsed))
        log.debug("%s: %s %.3f s", self.operation, step, elapsed)
        return elapsed

    def total(self, prefix: str) -> float:
        """Seconds of every step whose name starts with ``prefix`` (``"index "``, ``"copy "``)."""
        return sum(s for name, s in self.steps if name.startswith(prefix))

    def groups(self) -> dict[str, float]:
        """Seconds per kind of step (the first word: ``copy``, ``index``, ``foreign-key`` …)."""
        totals: dict[str, float] = {}
        for name, seconds in self.steps:
            group = name.split(" ", 1)[0]
            totals[group] = totals.get(group, 0.0) + seconds
        return {name: round(seconds, 3) for name, seconds in totals.items()}

    def summary(self) -> str:
        groups = self.groups()
        parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in groups.items())
        return f"{self.operation} took {sum(groups.values()):.1f} s: {parts}"
