"""pokervod-db: the database layer (block G) of the pokervod video archive.

The top-level API is what a service needs to start: ``Settings`` (or ``load_settings()``), one
``Database`` (engine and sessions), the ``DatabaseAgent`` sharing it, and ``PokervodDBError``,
the root of every error raised on purpose. Everything else lives in its own module, where its
name says what it is:

- models (catalog ``Event``, ``EventType`` …): ``pokervod_db.models``
- agent events (``Event``, ``EventType``, ``EventBus``, ``listen``): ``pokervod_db.events``
- errors and SQLSTATE codes: ``pokervod_db.errors``; catalog operations: ``pokervod_db.catalog``
- reads: ``pokervod_db.queries``; bulk writes: ``pokervod_db.ingest``; backups:
  ``pokervod_db.backup``; migrations: ``pokervod_db.migrate``
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pokervod_db.agent import DatabaseAgent
from pokervod_db.database import Database
from pokervod_db.errors import PokervodDBError
from pokervod_db.settings import Settings, load_settings

__all__ = ["Database", "DatabaseAgent", "PokervodDBError", "Settings", "load_settings"]

# Names this module exported before it was made small, and where they live: old imports keep
# working, but they are not part of the top-level API any more.
_MOVED = {
    "SCHEMA": "pokervod_db.settings",
    "BackupError": "pokervod_db.errors",
    "ConfigurationError": "pokervod_db.errors",
    "ConstraintViolationError": "pokervod_db.errors",
    "DatabaseUnavailableError": "pokervod_db.errors",
    "DuplicateError": "pokervod_db.errors",
    "IntegrityViolationError": "pokervod_db.errors",
    "LockTimeoutError": "pokervod_db.errors",
    "MigrationError": "pokervod_db.errors",
    "BaseAgent": "pokervod_db.agent",
    "MigrationResult": "pokervod_db.agent",
    "EventBus": "pokervod_db.events",
    "listen": "pokervod_db.events",
    "async_session_factory": "pokervod_db.database",
    "create_engine": "pokervod_db.database",
    "create_sync_engine": "pokervod_db.database",
    "get_db": "pokervod_db.database",
    "transaction": "pokervod_db.database",
    "create_catalog_tree": "pokervod_db.catalog",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(import_module(_MOVED[name]), name)
    if name in {"Event", "EventType"}:
        raise AttributeError(
            f"pokervod_db.{name} is ambiguous: import pokervod_db.events.{name} (agent events) "
            f"or pokervod_db.models.{name} (the catalog's poker events)"
        )
    raise AttributeError(f"module 'pokervod_db' has no attribute {name!r}")
