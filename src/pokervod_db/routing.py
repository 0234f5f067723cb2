"""Read routing: read-only transactions on a streaming replica that is close enough behind.

`ReadRouter` holds one engine per ``DATABASE_REPLICA_URLS`` entry. `read_transaction` asks each
replica (at most once a second) whether it is in recovery and how far behind it is; it spreads
transactions over the replicas within ``DB_REPLICA_MAX_LAG_S`` and falls back to the primary
when none is. Every read transaction is ``READ ONLY`` on the primary too, so code that works in
tests against one server cannot start writing once replicas are configured.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db.errors import PokervodDBError, SQLState, sqlstate, translate
from pokervod_db.settings import Settings, mask_url

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 1.0
STATE_TTL_S = 1.0
"""How long a replica's measured lag is trusted before it is asked again."""

# Lag: zero while streaming and caught up (replay = receive); otherwise the age of the last
# replayed commit. A standby that is not streaming gets that age too (it may be far behind
# without knowing it), which is conservative on an idle primary.
_LAG_SQL = text(
    "SELECT pg_is_in_recovery(), "
    "CASE WHEN EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') "
    "AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END"
)


class ReadOnlyTransactionError(PokervodDBError):
    """A write was attempted inside `Database.read_transaction()`."""


@dataclass
class ReplicaState:
    """One replica as the router last saw it (``database`` is masked)."""

    database: str
    reachable: bool
    lag_s: float | None
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def replica_state(engine: AsyncEngine, *, max_lag_s: float, timeout_s: float) -> ReplicaState:
    """Ask one replica whether it is a standby and how far behind it is; never raises."""
    database = engine.url.set(drivername="postgresql").render_as_string(hide_password=True)
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            in_recovery, lag = (await conn.execute(_LAG_SQL)).one()
            await conn.rollback()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else str(translate(exc))
        return ReplicaState(database, False, None, False, f"unreachable: {reason}")
    if not in_recovery:
        # A promoted standby is a second primary: reading there could miss the real writes.
        return ReplicaState(database, True, None, False, "not in recovery (promoted?)")
    if lag is None:
        return ReplicaState(database, True, None, False, "nothing replayed yet")
    lag_s = round(max(0.0, float(lag)), 3)
    ok = lag_s <= max_lag_s
    detail = f"{lag_s:.1f} s behind (limit {max_lag_s:g} s)"
    return ReplicaState(database, True, lag_s, ok, detail)


class ReadRouter:
    """Engines of the replicas and the choice of where a read transaction runs."""

    def __init__(self, settings: Settings, primary: async_sessionmaker[AsyncSession]) -> None:
        from pokervod_db.database import async_session_factory, create_engine

        self.max_lag_s = settings.replica_max_lag_s
        # Short: a probe runs on the request path (once a second), and a replica that does not
        # answer within a second is not one to send reads to anyway.
        self.timeout_s = min(settings.connect_timeout, PROBE_TIMEOUT_S)
        self.primary = primary
        self.engines: list[AsyncEngine] = [
            create_engine(settings.with_url(url), application_name="pokervod-db read")
            for url in settings.replica_url_list()
        ]
        self.factories = [async_session_factory(e) for e in self.engines]
        self._states: list[ReplicaState] = []
        self._checked_at = float("-inf")
        self._turn = itertools.count()
        self._lock = asyncio.Lock()

    async def states(self, *, refresh: bool = False) -> list[ReplicaState]:
        """The replicas' states, measured at most `STATE_TTL_S` ago (or now if ``refresh``)."""
        async with self._lock:
            if refresh or time.monotonic() - self._checked_at > STATE_TTL_S:
                self._states = list(
                    await asyncio.gather(
                        *(
                            replica_state(e, max_lag_s=self.max_lag_s, timeout_s=self.timeout_s)
                            for e in self.engines
                        )
                    )
                )
                self._checked_at = time.monotonic()
            return list(self._states)

    async def choose(self) -> tuple[async_sessionmaker[AsyncSession], str]:
        """A healthy replica's session factory (round robin), else the primary's."""
        if self.engines:
            states = await self.states()
            healthy = [i for i, s in enumerate(states) if s.ok]
            if healthy:
                index = healthy[next(self._turn) % len(healthy)]
                return self.factories[index], states[index].database
            log.debug("no replica within %g s; reading from the primary", self.max_lag_s)
        return self.primary, "primary"

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def _write_refused(exc: BaseException) -> ReadOnlyTransactionError:
    return ReadOnlyTransactionError(
        "a write was attempted in read_transaction(), which is read-only (it may run on a "
        "replica); use Database.transaction() for writes"
    )


@asynccontextmanager
async def read_transaction(
    primary: async_sessionmaker[AsyncSession], router: ReadRouter | None = None
) -> AsyncIterator[AsyncSession]:
    """A ``READ ONLY`` transaction on a healthy replica, or on the primary; a write in it
    raises `ReadOnlyTransactionError` (one line) and nothing is written anywhere."""
    factory = primary if router is None else (await router.choose())[0]
    async with factory() as session:
        try:
            async with session.begin():
                await session.execute(text("SET TRANSACTION READ ONLY"))
                yield session
        except DBAPIError as exc:
            if sqlstate(exc) == SQLState.READ_ONLY_SQL_TRANSACTION:
                raise _write_refused(exc) from exc
            raise


def masked_urls(settings: Settings) -> list[str]:
    """The configured replica URLs for display (passwords hidden)."""
    return [mask_url(u) for u in settings.replica_url_list()]
