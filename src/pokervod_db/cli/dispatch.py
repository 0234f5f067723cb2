"""How a command reaches the operations: settings, the event loop and the agent.

Commands stay thin: they load the settings with :func:`load_settings`, call an operation (most
through the agent with :func:`with_agent`, so other processes receive its events) and hand the
result to :mod:`pokervod_db.cli.render`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from pokervod_db import embedded, migrate
from pokervod_db.agent import DatabaseAgent, MigrationResult
from pokervod_db.errors import PokervodDBError
from pokervod_db.settings import Settings, load_settings

from .render import say

T = TypeVar("T")


def started_settings() -> Settings:
    """The settings, with the embedded server started when no DATABASE_URL is set."""
    return embedded.start(load_settings())


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one coroutine to completion: each command owns its event loop."""
    return asyncio.run(coro_fn())


def _quiet_agent_log() -> None:
    # The CLI prints the agent's results itself; its log lines would repeat them on stderr.
    logging.getLogger("pokervod_db.agent").setLevel(logging.ERROR)


def with_agent(
    fn: Callable[[DatabaseAgent], Coroutine[Any, Any, T]], settings: Settings | None = None
) -> T:
    """Run ``fn(agent)`` with a started agent, which publishes (and stores) its events."""
    settings = settings if settings is not None else load_settings()
    _quiet_agent_log()

    async def _go() -> T:
        async with DatabaseAgent(settings) as agent:
            return await fn(agent)

    return run(_go)


def migration_result(
    settings: Settings,
    direction: str,
    target: str,
    *,
    backup_first: bool = False,
    quiet: bool = False,
) -> MigrationResult:
    """Migrate through the agent, so other processes receive ``db.migration.completed``; the
    result, failed or not (``quiet``: no progress line, for ``--json``)."""
    result: MigrationResult = with_agent(
        lambda agent: agent.run_migration(direction, target, backup_first=backup_first), settings
    )
    if result.backup is not None and not quiet:
        say(f"backup taken first: {result.backup}")
    return result


def run_migration(
    settings: Settings, direction: str, target: str, *, backup_first: bool = False
) -> migrate.MigrationOutcome:
    """Migrate through the agent; an expected failure raises (one FAILED line)."""
    result = migration_result(settings, direction, target, backup_first=backup_first)
    if not result.success:
        raise PokervodDBError(result.error or f"the {direction} failed")
    return migrate.MigrationOutcome(direction, result.from_version, result.version, result.applied)
