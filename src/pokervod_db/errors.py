"""The error hierarchy of the database layer.

Every failure a user can cause or meet (a wrong URL, a dead server, a duplicate key, a corrupt
backup) is one of these, raised ``from`` the driver's exception so nothing is lost for debugging.
The CLI prints ``str(error)`` as one line and exits 1; other blocks can catch the subclasses.

This module is the one vocabulary for failures: the error classes, the SQLSTATE codes the
package reacts to (`SQLState`), `sqlstate()` to read one from any driver's exception, and
`translate()` / `translated()` to turn driver errors into package errors. Every error carries
``reason``: the cause without the framing of the message (``"Connection refused"`` inside
``"database unavailable: Connection refused"``), for callers that build their own sentence.
Messages name settings and parameters, never command-line flags (the CLI says those).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import exc as sa_exc


class PokervodDBError(Exception):
    """Root of every error this package raises on purpose.

    ``str(error)`` is the whole one-line message; ``reason`` is its cause alone (the message
    itself when there is no framing), so callers never cut prefixes out of messages.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason: str = reason if reason is not None else message


class ConfigurationError(PokervodDBError):
    """The settings are invalid (bad URL, missing directory, …)."""


class DatabaseUnavailableError(PokervodDBError):
    """The server cannot be reached or refused the login."""


class PoolExhaustedError(DatabaseUnavailableError):
    """No pooled connection became free in time (every connection of the pool is in use)."""


class StatementTimeoutError(PokervodDBError):
    """A statement ran longer than ``DB_STATEMENT_TIMEOUT_MS`` and the server cancelled it."""


class IntegrityViolationError(PokervodDBError):
    """A write broke a rule of the schema."""

    def __init__(
        self, message: str, *, constraint: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.constraint = constraint


class DuplicateError(IntegrityViolationError):
    """A unique rule was broken: the row (by its natural key) already exists."""


class ConstraintViolationError(IntegrityViolationError):
    """A check, not-null or foreign-key rule was broken."""


class MigrationError(PokervodDBError):
    """A migration could not run, or the database is at a revision this code does not know."""


class LockTimeoutError(PokervodDBError):
    """Another migration, backup or restore holds the maintenance lock for too long."""


class BackupError(PokervodDBError):
    """A backup, verification or restore failed; the database was left as it was."""


class SQLState:
    """The PostgreSQL error codes (SQLSTATE) this package reacts to, by their names in the
    PostgreSQL manual's appendix A."""

    CARDINALITY_VIOLATION = "21000"  # ON CONFLICT DO UPDATE hit the same row twice
    DATA_EXCEPTION_CLASS = "22"  # a bad value: out of range, invalid text representation …
    INTEGRITY_VIOLATION_CLASS = "23"  # unique, check, not-null, foreign-key rules
    READ_ONLY_SQL_TRANSACTION = "25006"  # a write in a READ ONLY transaction or on a standby
    UNIQUE_VIOLATION = "23505"
    INVALID_SCHEMA_NAME = "3F000"
    UNDEFINED_TABLE = "42P01"
    LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired
    PROGRAM_LIMIT_EXCEEDED_CLASS = "54"  # e.g. a tsvector over 1 MB


# SQLSTATE classes: 23505 unique, 23514 check, 23502 not null, 23503 foreign key.
_UNIQUE = "23505"
_QUERY_CANCELED = "57014"  # statement_timeout (or a cancel request)
_IDLE_IN_TRANSACTION = "25P03"  # idle_in_transaction_session_timeout ended the session
_INSUFFICIENT_PRIVILEGE = "42501"
_READ_ONLY = "25006"
# Operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now)
# and connection exceptions (08xxx): the server went away.
_GONE_PREFIXES = ("08", "57P")


def _driver_gone(exc: BaseException) -> bool:
    """The driver's own "connection is closed" errors (asyncpg raises them unwrapped)."""
    import asyncpg  # type: ignore[import-untyped]

    return isinstance(
        exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError | ConnectionError
    )


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a driver error, bare or wrapped by SQLAlchemy, for asyncpg
    and psycopg alike (None when the error did not come from the server)."""
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig, getattr(orig, "__cause__", None)):
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def _constraint_name(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None)):
        name = getattr(candidate, "constraint_name", None)
        if isinstance(name, str):
            return name
        diag = getattr(candidate, "diag", None)
        if diag is not None and isinstance(getattr(diag, "constraint_name", None), str):
            return str(diag.constraint_name)
    return None


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", exc)
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _translate_server_code(code: str | None, exc: BaseException) -> PokervodDBError | None:
    """The errors told apart by the server's SQLSTATE alone (None: not one of them)."""
    if code == _QUERY_CANCELED:
        return StatementTimeoutError(
            f"statement cancelled: {_first_line(exc)} (DB_STATEMENT_TIMEOUT_MS); narrow the "
            "query or raise the limit"
        )
    if code == _IDLE_IN_TRANSACTION:
        return DatabaseUnavailableError(
            "the server ended a transaction left idle too long (DB_IDLE_IN_TRANSACTION_TIMEOUT_MS)"
        )
    if code == _INSUFFICIENT_PRIVILEGE:
        return PokervodDBError(f"not allowed for this database role: {_first_line(exc)}")
    if code == _READ_ONLY:
        return PokervodDBError(f"read-only: {_first_line(exc)}")
    if isinstance(code, str) and code.startswith(_GONE_PREFIXES):
        return DatabaseUnavailableError(f"database unavailable: {_first_line(exc)}")
    return None


def translate(exc: BaseException) -> PokervodDBError:
    """Map a SQLAlchemy/driver exception to the package's error with a one-line message."""
    if isinstance(exc, PokervodDBError):
        return exc
    by_code = _translate_server_code(sqlstate(exc) or getattr(exc, "sqlstate", None), exc)
    if by_code is not None:
        return by_code
    if isinstance(exc, sa_exc.TimeoutError):  # the pool's, not the server's
        return PoolExhaustedError(f"no free database connection: {exc}".splitlines()[0])
    if _driver_gone(exc) or _driver_gone(getattr(exc, "orig", None) or exc):
        return DatabaseUnavailableError(
            f"database unavailable: the connection was lost ({_first_line(exc)})"
        )
    if isinstance(exc, sa_exc.IntegrityError):
        constraint = _constraint_name(exc)
        detail = _first_line(exc)
        if sqlstate(exc) == SQLState.UNIQUE_VIOLATION:
            return DuplicateError(f"duplicate: {detail}", constraint=constraint, reason=detail)
        return ConstraintViolationError(
            f"constraint violated: {detail}", constraint=constraint, reason=detail
        )
    if isinstance(exc, sa_exc.InterfaceError | sa_exc.OperationalError | OSError | TimeoutError):
        detail = _first_line(exc)
        return DatabaseUnavailableError(f"database unavailable: {detail}", reason=detail)
    if isinstance(exc, sa_exc.DBAPIError):
        detail = _first_line(exc)
        return PokervodDBError(f"database error: {detail}", reason=detail)
    return PokervodDBError(f"{type(exc).__name__}: {exc}", reason=str(exc) or type(exc).__name__)


@contextmanager
def translated() -> Iterator[None]:
    """Re-raise driver errors inside the block as `PokervodDBError` subclasses (chained)."""
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError, TimeoutError) as exc:
        raise translate(exc) from exc
    except Exception as exc:
        if _driver_gone(exc) or getattr(exc, "sqlstate", None):
            raise translate(exc) from exc
        raise
