"""A version-checked cache of catalog trees, one per engine.

A project's tree (thousands of episodes) costs tens of milliseconds to read and build, and it
changes rarely. Migration 007 keeps, per project, a random ``version`` that triggers replace in
the same statement as any write to the tree. A reader reads that one row (primary key) and
serves the tree it built earlier at the same version; only when the version differs does it
read the tree again. Why this is exact, with no time-to-live:

- A committed write elsewhere changed the version the reader now sees: a miss.
- A write in the reader's own transaction changed the version that transaction sees (the
  trigger ran in it): a miss, and the tree is rebuilt from what the transaction sees
  (read-your-writes). Storing that entry is safe: an uncommitted version is visible only to
  its transaction, whose data it matches, or after commit to everyone, still matching; a
  rolled-back version is never seen again (random uuids are never reused, not even by a
  restored or rebuilt database).
- A miss reads the version, builds the tree (several statements), and reads the version again;
  the entry is stored only if both reads agree. Under READ COMMITTED each statement has its own
  snapshot, and a version unchanged from the first snapshot to the last proves that no commit
  touched the tree in between, so the tree belongs to that version (under REPEATABLE READ the
  check is trivially true: one snapshot).
- Cached values are immutable (tuples of named tuples, or a JSON ``str``): a caller cannot
  change what the next caller gets.

The cache belongs to the engine (the process's connection to one database), like the query
counters of `pokervod_db.monitoring`, and dies with it. It is a bounded LRU of
`DEFAULT_MAX_ENTRIES` trees (per project, ``include_deleted`` and kind).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import Engine

T = TypeVar("T")

DEFAULT_MAX_ENTRIES = 32
"""Trees kept per engine (key: project, include_deleted, kind), least recently used dropped."""

VERSION_SQL = "SELECT version FROM pokervod.catalog_versions WHERE project_id = $1::uuid"
"""The one statement a hit costs (``pk_catalog_versions``)."""

REBUILD_VERSIONS_SQL = """
DO $pokervod_versions$
BEGIN
    IF to_regclass('pokervod.catalog_versions') IS NOT NULL THEN
        DELETE FROM pokervod.catalog_versions;
        INSERT INTO pokervod.catalog_versions (project_id, version)
        SELECT id, gen_random_uuid() FROM pokervod.projects;
    END IF;
END
$pokervod_versions$
"""
"""Fresh versions for every project, run by a restore after loading the rows: the archive's
version rows are derived data, never trusted (a crafted archive could repeat a version that a
running process has cached for other rows), and the load runs with the triggers off. A schema
older than 007_catalog_versions has no such table; its upgrade writes the rows."""

Fetch = Callable[..., Awaitable[Sequence[Sequence[Any]]]]
"""Runs ``(sql, *args)`` in the caller's transaction and returns its rows."""

_MISSING: Any = object()


class TreeCache:
    """A bounded LRU of ``key -> (version, value)``, with hit and miss counters."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()  # engines may be shared by threads with their own loops

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any, version: Any) -> Any:
        """The value stored for ``key`` at ``version``, else the module's ``_MISSING``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                self.misses += 1
                return _MISSING
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Any, version: Any, value: Any) -> None:
        with self._lock:
            self._entries[key] = (version, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CACHES: WeakKeyDictionary[Engine, TreeCache] = WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()
_override: ContextVar[TreeCache | None] = ContextVar("pokervod_tree_cache", default=None)


def cache_for(bind: Any) -> TreeCache:
    """The tree cache of the engine behind ``bind`` (an engine or connection, sync or async)."""
    override = _override.get()
    if override is not None:
        return override
    engine: Engine = getattr(bind, "sync_engine", None) or bind.engine
    cache = _CACHES.get(engine)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.setdefault(engine, TreeCache())
    return cache


@contextmanager
def using(cache: TreeCache) -> Iterator[TreeCache]:
    """Serve the reads inside the block from ``cache`` instead of the engine's.

    For measurements and tests: a fresh ``TreeCache()`` per call times the cold path (a miss
    with everything it costs) without emptying the engine's cache for everyone else.
    """
    token = _override.set(cache)
    try:
        yield cache
    finally:
        _override.reset(token)


async def cached(
    cache: TreeCache, fetch: Fetch, key: tuple[Any, ...], build: Callable[[], Awaitable[T]]
) -> T:
    """``build()``'s result for ``key`` (whose first item is the project id), served from
    ``cache`` while the project's version is the one it was built at.

    A project without a version row (none such, or rows loaded with the triggers off and not
    yet rebuilt) is built every time and not stored.
    """
    project_id = key[0]
    rows = await fetch(VERSION_SQL, project_id)
    if not rows:
        return await build()
    version = rows[0][0]
    value = cache.get(key, version)
    if value is not _MISSING:
        return value  # type: ignore[no-any-return]
    built = await build()
    again = await fetch(VERSION_SQL, project_id)
    if again and again[0][0] == version:
        cache.put(key, version, built)
    return built
