"""pokervod-db: the database layer (block G) of the pokervod video archive.

The public API. Models live in `pokervod_db.models`, backup operations in
`pokervod_db.backup`, reads in `pokervod_db.queries`, bulk writes in `pokervod_db.ingest`.
"""

from pokervod_db.agent import BaseAgent, DatabaseAgent, MigrationResult
from pokervod_db.database import (
    Database,
    async_session_factory,
    create_catalog_tree,
    create_engine,
    create_sync_engine,
    get_db,
    run_in_transaction,
    transaction,
)
from pokervod_db.errors import (
    BackupError,
    ConfigurationError,
    ConstraintViolationError,
    DatabaseUnavailableError,
    DuplicateError,
    IntegrityViolationError,
    LockTimeoutError,
    MigrationError,
    PokervodDBError,
    PoolExhaustedError,
    StatementTimeoutError,
)
from pokervod_db.events import Event, EventBus, EventType, listen
from pokervod_db.settings import SCHEMA, Settings

__all__ = [
    "SCHEMA",
    "BackupError",
    "BaseAgent",
    "ConfigurationError",
    "ConstraintViolationError",
    "Database",
    "DatabaseAgent",
    "DatabaseUnavailableError",
    "DuplicateError",
    "Event",
    "EventBus",
    "EventType",
    "IntegrityViolationError",
    "LockTimeoutError",
    "MigrationError",
    "MigrationResult",
    "PokervodDBError",
    "PoolExhaustedError",
    "Settings",
    "StatementTimeoutError",
    "async_session_factory",
    "create_catalog_tree",
    "create_engine",
    "create_sync_engine",
    "get_db",
    "listen",
    "run_in_transaction",
    "transaction",
]
