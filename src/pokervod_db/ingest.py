"""The write side for bulk loads: upserts by natural key at close to COPY speed.

A NAS scan reports a million files at a time and the sheets sync rewrites hundreds of thousands
of clips; row-by-row ORM writes cannot keep up. Each upsert here:

1. sends the rows with a binary COPY into a temporary staging table (wide column types, no
   constraints, not WAL-logged), then
2. applies them with one ``INSERT … SELECT … ON CONFLICT (natural key) DO UPDATE … WHERE
   (target columns) IS DISTINCT FROM (new values)``: unchanged rows are not rewritten, so
   their ``updated_at`` (set by the trigger on real updates only) and their disk pages stay.
   ``RETURNING (xmax = 0)`` tells inserted from updated rows; the rest were unchanged.
   A rescan (a sample shows most keys exist) instead updates the changed rows with one
   joined ``UPDATE … FROM`` the staging table and then inserts the new keys with the same
   ``INSERT … ON CONFLICT`` (see `_apply_rescan`).

Only the columns the caller passes are written: on update the others keep their values, on
insert they get their defaults. Rows are mappings (column → value) or, with ``columns=``,
sequences in that column order.

Bad rows (a value that breaks a rule of the schema: a too-long string, a negative size, an
unknown foreign key, a missing key) are found by SQL that mirrors the table's rules, run over
the staging table, and reported with their input position, key and reason. ``mode`` decides:
``"all_or_nothing"`` (default) applies nothing and raises `IngestError` listing them;
``"skip_bad_rows"`` applies the good rows and returns the bad ones in the result. Rows with
the same key in one batch: the last one wins; the earlier ones are listed in ``duplicates``.
The happy path pays for none of this: the checks run only after the fast statement failed.

Everything runs in the session's transaction (the caller commits) inside a savepoint, so a
failed call leaves the transaction usable and its data untouched. The ORM is bypassed:
objects already loaded in the session are not refreshed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import operator
import re
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, ParamSpec, TypeVar

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import BigInteger, Integer, Numeric, SmallInteger, String, Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db.errors import PokervodDBError, SQLState, sqlstate
from pokervod_db.instrumentation import timed
from pokervod_db.models import (
    HandClip,
    NASFile,
    NASFolder,
    VideoFile,
    hand_clip_players,
    hand_clip_tags,
)
from pokervod_db.settings import SCHEMA

log = logging.getLogger(__name__)

Mode = Literal["all_or_nothing", "skip_bad_rows"]
Row = Mapping[str, Any] | Sequence[Any]

# Columns a caller never writes: the database assigns them.
_SERVER_OWNED = {"id", "created_at", "updated_at"}
# SQLSTATE classes of errors that a bad value causes (data exception, integrity violation)
# and the one of two rows with the same key in one ON CONFLICT DO UPDATE (cardinality).
_BAD_DATA_CLASSES = (
    SQLState.DATA_EXCEPTION_CLASS,
    SQLState.INTEGRITY_VIOLATION_CLASS,
    SQLState.PROGRAM_LIMIT_EXCEEDED_CLASS,
)
_TSVECTOR_MAX_BYTES = 1_048_575
_PLAIN_ROWS = frozenset({tuple, list})
_EXACT_INTEGERS = frozenset({int, type(None)})
# Key values whose Python equality is PostgreSQL's (text under a deterministic collation,
# integers): for them a Python set proves a batch free of duplicate keys (see `_distinct_keys`).
_PLAIN_KEYS = frozenset({str, int, type(None)})
_MAX_LISTED = 5
INGEST_WORK_MEM = "256MB"
"""Memory for the duplicate check and the changed-rows join of one bulk call."""


class IngestError(PokervodDBError):
    """A bulk write was refused: nothing of it was applied.

    ``bad_rows`` lists every row that breaks a rule (empty when the database refused the batch
    for a reason the checks do not mirror; the message then carries its error).
    """

    def __init__(self, message: str, *, table: str, bad_rows: Sequence[BadRow] = ()) -> None:
        super().__init__(message)
        self.table = table
        self.bad_rows = list(bad_rows)


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that was not applied: its position in the input, its key and why."""

    index: int
    key: tuple[Any, ...]
    reason: str

    def __str__(self) -> str:
        key = ", ".join(repr(k) for k in self.key)
        return f"row {self.index} ({key}): {self.reason}"


@dataclass(frozen=True, slots=True)
class DuplicateRow:
    """An input row superseded by a later row with the same key (``kept`` is its index)."""

    index: int
    key: tuple[Any, ...]
    kept: int


@dataclass
class UpsertResult:
    """What one upsert did: counts per outcome, and the rows it did not apply."""

    table: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    duplicates: list[DuplicateRow] = field(default_factory=list)

    @property
    def applied(self) -> int:
        """Rows written (inserted or updated)."""
        return self.inserted + self.updated


@dataclass
class LinkResult:
    """What one link call did: links added, removed (``replace``), already present."""

    table: str
    inserted: int = 0
    removed: int = 0
    unchanged: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)


# --- phase timings (the benchmark's breakdown) ------------------------------------------------

_phase_sinks: list[dict[str, float]] = []
_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def phase_timings() -> Iterator[dict[str, float]]:
    """Seconds per internal step (stage, duplicate_check, sample, apply, …) of the upserts run
    inside the block, summed by step: where a bulk call spends its time, without a profiler."""
    sink: dict[str, float] = {}
    _phase_sinks.append(sink)
    try:
        yield sink
    finally:
        _phase_sinks.remove(sink)


def _phase(
    name: str,
) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], Callable[_P, Coroutine[Any, Any, _R]]]:
    def decorate(
        fn: Callable[_P, Coroutine[Any, Any, _R]],
    ) -> Callable[_P, Coroutine[Any, Any, _R]]:
        @functools.wraps(fn)
        async def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            if not _phase_sinks:
                return await fn(*args, **kwargs)
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                for sink in _phase_sinks:
                    sink[name] = sink.get(name, 0.0) + seconds

        return run

    return decorate


# --- targets ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    table: Table
    key: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.table.name

    def settable(self) -> list[str]:
        return [
            c.name for c in self.table.columns if c.name not in _SERVER_OWNED and c.computed is None
        ]

    def required(self) -> list[str]:
        """Columns a new row cannot do without (NOT NULL and no server default)."""
        return [
            c.name
            for c in self.table.columns
            if c.name in self.settable() and not c.nullable and c.server_default is None
        ]


_NAS_FOLDERS = _Target(NASFolder.__table__, ("folder_path",))  # type: ignore[arg-type]
_NAS_FILES = _Target(NASFile.__table__, ("file_path",))  # type: ignore[arg-type]
_VIDEO_FILES = _Target(VideoFile.__table__, ("file_path",))  # type: ignore[arg-type]
_HAND_CLIPS = _Target(HandClip.__table__, ("sheet_source", "sheet_row_number"))  # type: ignore[arg-type]


def _staging_type(table: Table, column: str) -> str:
    """A type that accepts every value the caller may send, so the checks can report it.

    Strings are staged as ``text`` and integers as ``bigint`` (the length and range rules are
    then checked, not failed on); numerics lose their precision for the same reason.
    """
    type_ = table.c[column].type
    if isinstance(type_, String):
        return "text"
    if isinstance(type_, Integer | SmallInteger) and not isinstance(type_, BigInteger):
        return "bigint"
    if isinstance(type_, Numeric) and not isinstance(type_, Integer):
        return "numeric"
    return str(type_.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- public API -------------------------------------------------------------------------------


@timed("ingest.upsert_nas_folders")
async def upsert_nas_folders(
    session: AsyncSession,
    rows: Iterable[Row],
    *,
    columns: Sequence[str] | None = None,
    mode: Mode = "all_or_nothing",
) -> UpsertResult:
    """Insert or update NAS folders by ``folder_path``."""
    return await _upsert(session, _NAS_FOLDERS, rows, columns=columns, mode=mode)


@timed("ingest.upsert_nas_files")
async def upsert_nas_files(
    session: AsyncSession,
    rows: Iterable[Row],
    *,
    columns: Sequence[str] | None = None,
    mode: Mode = "all_or_nothing",
) -> UpsertResult:
    """Insert or update NAS files by ``file_path`` (a scan's whole report at once)."""
    return await _upsert(session, _NAS_FILES, rows, columns=columns, mode=mode)


@timed("ingest.upsert_video_files")
async def upsert_video_files(
    session: AsyncSession,
    rows: Iterable[Row],
    *,
    columns: Sequence[str] | None = None,
    mode: Mode = "all_or_nothing",
) -> UpsertResult:
    """Insert or update video files by ``file_path``."""
    return await _upsert(session, _VIDEO_FILES, rows, columns=columns, mode=mode)


@timed("ingest.upsert_hand_clips")
async def upsert_hand_clips(
    session: AsyncSession,
    rows: Iterable[Row],
    *,
    columns: Sequence[str] | None = None,
    mode: Mode = "all_or_nothing",
) -> UpsertResult:
    """Insert or update hand clips by ``(sheet_source, sheet_row_number)`` (the sheets sync)."""
    return await _upsert(session, _HAND_CLIPS, rows, columns=columns, mode=mode)


@timed("ingest.link_hand_clip_tags")
async def link_hand_clip_tags(
    session: AsyncSession,
    links: Mapping[uuid.UUID, Iterable[uuid.UUID]] | Iterable[tuple[uuid.UUID, uuid.UUID]],
    *,
    replace: bool = False,
    mode: Mode = "all_or_nothing",
) -> LinkResult:
    """Tag many clips at once: ``{clip_id: [tag_id, …]}`` or ``(clip_id, tag_id)`` pairs.

    With ``replace=True`` each clip named in ``links`` ends up with exactly the given tags
    (an empty list removes all of a clip's tags); otherwise tags are only added.
    """
    return await _link(session, hand_clip_tags, "tag_id", links, replace=replace, mode=mode)


@timed("ingest.link_hand_clip_players")
async def link_hand_clip_players(
    session: AsyncSession,
    links: Mapping[uuid.UUID, Iterable[uuid.UUID]] | Iterable[tuple[uuid.UUID, uuid.UUID]],
    *,
    replace: bool = False,
    mode: Mode = "all_or_nothing",
) -> LinkResult:
    """Link players to many clips at once (same forms and ``replace`` as the tags)."""
    return await _link(session, hand_clip_players, "player_id", links, replace=replace, mode=mode)


# --- the upsert -------------------------------------------------------------------------------


class _Staged:
    """Rows that reached the staging table, and the input position of each."""

    def __init__(self, name: str, count: int, positions: list[int] | None) -> None:
        self.name = name
        self.count = count
        self.positions = positions  # None: staged row i is input row i

    def input_index(self, ordinal: int) -> int:
        return ordinal if self.positions is None else self.positions[ordinal]


async def _driver(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction."""
    # Pending ORM changes first: the batch may refer to rows the caller just added. The
    # SELECT makes SQLAlchemy open its transaction on the connection before we use it raw.
    await session.flush()
    await session.execute(text("SELECT 1"))
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, asyncpg.Connection):
        raise PokervodDBError("bulk ingest needs the asyncpg driver (postgresql+asyncpg://)")
    return driver


def _records(  # noqa: C901 - one pass over the rows keeps each bad row's number with it
    rows: Iterable[Row], columns: Sequence[str] | None, target: _Target
) -> tuple[list[str], list[Sequence[Any]], list[int] | None, list[BadRow]]:
    """Turn the input into COPY records, checking every row's shape and exact-fit values first.

    Mapping rows: the columns are the union of all rows' keys; a row that lacks one of them
    is a bad row (never stored as NULL or a default behind the caller's back). Rows with
    ``columns=``: exactly one value per column (a ``str`` is one value, not a sequence).
    Values that the driver would bend (1.5 for an integer column, 0.125 for numeric(…,2))
    are bad rows too. The common case (every row well formed) costs one pass of ``len``.
    """
    rows = rows if isinstance(rows, list) else list(rows)
    target_name = target.name
    if not rows:
        return list(columns or ()), [], None, []
    if columns is None:
        first = rows[0]
        if not isinstance(first, Mapping):
            raise ValueError(f"{target_name}: rows are sequences: pass columns=[…] too")
        cols = list(first.keys())
        width = len(cols)
        if not all(isinstance(r, Mapping) and len(r) == width for r in rows):
            cols = list(dict.fromkeys(k for r in rows if isinstance(r, Mapping) for k in r))
    else:
        cols = list(columns)
    if any(not isinstance(c, str) for c in cols):
        raise ValueError(f"{target_name}: column names must be strings")
    width = len(cols)
    records: list[Sequence[Any]]
    positions: list[int] | None = None
    bad: list[BadRow] = []
    fast = False
    if isinstance(rows[0], Mapping):
        getter: Callable[[Any], Any] = operator.itemgetter(*cols)
        if all(isinstance(r, Mapping) and len(r) == width for r in rows):
            try:
                records = [(getter(r),) for r in rows] if width == 1 else [getter(r) for r in rows]
                fast = True  # same size and every column present: exactly these keys
            except (KeyError, TypeError):
                pass
    elif set(map(type, rows)) <= _PLAIN_ROWS and set(map(len, rows)) == {width}:
        # Two passes in C over a million rows cost a fraction of one generator in Python.
        records, fast = rows, True  # type: ignore[assignment]  # checked: tuples and lists
    if not fast:
        records, positions = [], []
        for i, row in enumerate(rows):
            reason = _shape_problem(row, cols)
            if reason is not None:
                bad.append(BadRow(i, _key_guess(row, cols, target.key), reason))
                continue
            if isinstance(row, Mapping):
                records.append(tuple(row[c] for c in cols))
            else:
                records.append(row)
            positions.append(i)
    fitted, misfits = _exact_fit(target, cols, records, positions)
    if misfits is None:
        return cols, fitted, positions, bad
    return cols, fitted, misfits[0], bad + misfits[1]


def _shape_problem(row: Any, cols: Sequence[str]) -> str | None:
    """Why ``row`` cannot be one record of ``cols`` (None when it can)."""
    if isinstance(row, Mapping):
        missing = [c for c in cols if c not in row]
        extra = [str(k) for k in row if k not in cols]
        if missing:
            return (
                f"missing column(s) {', '.join(missing)} that other rows of the batch carry "
                "(give every row the same columns; None for no value)"
            )
        if extra:
            return f"column(s) {', '.join(extra)} are not in columns= (they would be dropped)"
        return None
    if isinstance(row, str | bytes | bytearray | memoryview):
        return f"a {type(row).__name__} is one value, not a row of {len(cols)} values"
    if not isinstance(row, Sequence):
        return f"not a row: {type(row).__name__} (expected a mapping or a sequence of values)"
    if len(row) != len(cols):
        return f"has {len(row)} value(s) for {len(cols)} column(s) ({', '.join(cols)})"
    return None


def _key_guess(row: Any, cols: Sequence[str], key: Sequence[str]) -> tuple[Any, ...]:
    """The key of a malformed row as far as it can be read (for the report only)."""
    try:
        if isinstance(row, Mapping):
            return tuple(row.get(k) for k in key)
        if isinstance(row, Sequence) and not isinstance(row, str | bytes):
            return tuple(row[cols.index(k)] for k in key if cols.index(k) < len(row))
    except (TypeError, ValueError):
        pass
    return ()


def _integral(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (not a bool), else None."""
    if type(value) is int:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float | Decimal) and math.isfinite(value) and value == int(value):
        return int(value)
    return None


def _fit_checks(
    target: _Target, cols: Sequence[str]
) -> list[tuple[int, str, Callable[[Any], tuple[bool, Any, str]]]]:
    """The per-value checks `_exact_fit` must run: ``(column index, name, check)``."""
    checks: list[tuple[int, str, Callable[[Any], tuple[bool, Any, str]]]] = []
    for i, name in enumerate(cols):
        type_ = target.table.c[name].type if name in target.table.c else None
        if isinstance(type_, Integer):
            checks.append((i, name, _check_integer))
        elif isinstance(type_, Numeric) and type_.scale is not None:
            checks.append((i, name, _numeric_check(type_.scale)))
    return checks


def _exact_fit(
    target: _Target,
    cols: Sequence[str],
    records: list[Sequence[Any]],
    positions: list[int] | None,
) -> tuple[list[Sequence[Any]], tuple[list[int], list[BadRow]] | None]:
    """Refuse values the driver would round: non-whole numbers for integer columns, more
    decimals than a numeric column keeps. Whole floats (``2.0``) are sent as the int they equal."""
    checks = _fit_checks(target, cols)
    if not checks:
        return records, None
    changed: dict[int, list[Any]] = {}
    misfit: dict[int, str] = {}
    # The common case, told by one pass in C per column: only ints and None, nothing to do.
    checks = [c for c in checks if not _only_exact_integers(records, c[0])]
    for i, name, check in checks:
        for r, record in enumerate(records):
            value = record[i]
            if value is None or type(value) is int:
                continue
            ok, fitted, reason = check(value)
            if not ok:
                misfit.setdefault(r, f"{name} {reason}")
            elif fitted is not value:
                changed.setdefault(r, list(record))[i] = fitted
    for r, values in changed.items():
        records[r] = tuple(values)
    if not misfit:
        return records, None
    index = list(range(len(records))) if positions is None else positions
    key_at = [cols.index(k) for k in target.key if k in cols]
    bad = [
        BadRow(index[r], tuple(records[r][k] for k in key_at), reason)
        for r, reason in misfit.items()
    ]
    kept = [r for r in range(len(records)) if r not in misfit]
    return [records[r] for r in kept], ([index[r] for r in kept], bad)


def _lengths_fit(target: _Target, cols: Sequence[str], records: Sequence[Sequence[Any]]) -> bool:
    """Whether every string fits its ``varchar(n)`` column, else the checked path must run.

    The fast path's INSERT … SELECT from the ``text`` staging table would store a value whose
    excess is only spaces cut to ``n`` without an error (PostgreSQL's rule for ``varchar``);
    the checked path names every over-long value as a bad row instead.
    """
    for i, name in enumerate(cols):
        type_ = target.table.c[name].type if name in target.table.c else None
        if isinstance(type_, String) and type_.length is not None:
            if not _all_fit(records, i, type_.length):
                return False
    return True


def _all_fit(records: Sequence[Sequence[Any]], column: int, length: int) -> bool:
    """Whether no value of ``column`` is longer than ``length`` (one pass in C; a value without
    a length, which the driver refuses anyway, sends the column to the per-row check)."""
    try:
        return (
            max(map(len, filter(None, map(operator.itemgetter(column), records))), default=0)
            <= length
        )
    except (TypeError, IndexError):
        return False


def _only_exact_integers(records: Sequence[Sequence[Any]], column: int) -> bool:
    return set(map(type, map(operator.itemgetter(column), records))) <= _EXACT_INTEGERS


def _check_integer(value: Any) -> tuple[bool, Any, str]:
    if not isinstance(value, int | float | Decimal):
        return True, value, ""  # not a number: the driver refuses it and it is reported
    whole = _integral(value)
    if whole is None:
        return False, None, f"must be a whole number, got {value!r}"
    return True, whole, ""


def _numeric_check(scale: int) -> Callable[[Any], tuple[bool, Any, str]]:
    def check(value: Any) -> tuple[bool, Any, str]:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            return True, value, ""  # not a number: the driver refuses it and it is reported
        exact = Decimal(value) if not isinstance(value, float) else Decimal(repr(value))
        if not exact.is_finite():
            return False, None, f"must be a finite number, got {value!r}"
        if exact != exact.quantize(Decimal(1).scaleb(-scale), rounding="ROUND_DOWN"):
            return False, None, f"has more than {scale} decimal place(s): {value!r}"
        return True, exact if isinstance(value, float) else value, ""

    return check


@_phase("stage")
async def _stage(
    driver: asyncpg.Connection,
    table: Table,
    columns: Sequence[str],
    records: Sequence[Sequence[Any]],
    positions: list[int] | None,
    key_of: Callable[[Sequence[Any]], tuple[Any, ...]],
) -> tuple[_Staged, list[BadRow]]:
    """COPY the records into a new temporary table; find rows the driver cannot encode.

    A value of the wrong Python type (a str for an integer, an int beyond int8) makes asyncpg
    fail the whole COPY. Only then the batch is bisected in savepoints to name those rows.
    """
    name = f"_ingest_{table.name}_{uuid.uuid4().hex[:10]}"
    defs = ", ".join(f"{_q(c)} {_staging_type(table, c)}" for c in columns)
    # Temporary and dropped at commit at the latest; no constraints so every row gets in.
    await driver.execute(f"CREATE TEMPORARY TABLE {_q(name)} ({defs}) ON COMMIT DROP")
    bad: list[BadRow] = []
    kept: list[int] = []

    async def copy(lo: int, hi: int) -> None:
        await driver.execute("SAVEPOINT pokervod_ingest_copy")
        try:
            await driver.copy_records_to_table(name, records=records[lo:hi], columns=list(columns))
        except (asyncpg.DataError, TypeError, ValueError, OverflowError, AttributeError) as exc:
            await driver.execute("ROLLBACK TO SAVEPOINT pokervod_ingest_copy")
            await driver.execute("RELEASE SAVEPOINT pokervod_ingest_copy")
            if hi - lo == 1:
                index = positions[lo] if positions is not None else lo
                bad.append(BadRow(index, key_of(records[lo]), _encode_reason(exc)))
                return
            mid = (lo + hi) // 2
            await copy(lo, mid)
            await copy(mid, hi)
            return
        await driver.execute("RELEASE SAVEPOINT pokervod_ingest_copy")
        kept.extend(range(lo, hi))

    await copy(0, len(records))
    if not bad:
        return _Staged(name, len(records), positions), []
    staged_positions = [positions[i] if positions is not None else i for i in kept]
    return _Staged(name, len(kept), staged_positions), bad


def _encode_reason(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"value not accepted: {message}"


async def _upsert(
    session: AsyncSession,
    target: _Target,
    rows: Iterable[Row],
    *,
    columns: Sequence[str] | None,
    mode: Mode,
) -> UpsertResult:
    if mode not in ("all_or_nothing", "skip_bad_rows"):
        raise ValueError(f"mode must be 'all_or_nothing' or 'skip_bad_rows', not {mode!r}")
    cols, records, positions, bad = _records(rows, columns, target)
    result = UpsertResult(table=target.name)
    if not records and not bad:
        return result
    _check_columns(target, cols)
    key_index = [cols.index(k) for k in target.key]

    def key_of(record: Sequence[Any]) -> tuple[Any, ...]:
        try:
            return tuple(record[i] for i in key_index)
        except (IndexError, TypeError, KeyError):
            return ()

    driver = await _driver(session)
    work_mem = await _enter(driver)
    try:
        staged, unencodable = await _stage(driver, target.table, cols, records, positions, key_of)
        bad.extend(unencodable)
        if (
            not bad
            and _lengths_fit(target, cols, records)
            and not await _has_duplicate_keys(driver, target, staged, records, key_index)
        ):
            fast = await _apply_fast(driver, target, cols, staged)
            if fast is not None:
                result.inserted, result.updated = fast
                result.unchanged = staged.count - result.applied
                await driver.execute(f"DROP TABLE {_q(staged.name)}")
                await _leave(driver, work_mem)
                return result
        await _apply_checked(driver, target, cols, staged, bad, mode, result)
    except BaseException:
        await _rollback_savepoint(driver)
        raise
    await _leave(driver, work_mem)
    return result


async def _enter(driver: asyncpg.Connection) -> str:
    """Open the call's savepoint and give its hash joins and aggregates room in memory.

    ``SET LOCAL`` inside the savepoint: undone by a rollback to it, and put back by `_leave`
    on success, so the caller's transaction keeps its own ``work_mem``.
    """
    await driver.execute("SAVEPOINT pokervod_ingest")
    before = await driver.fetchval("SELECT current_setting('work_mem')")
    await driver.execute(f"SET LOCAL work_mem = '{INGEST_WORK_MEM}'")
    return str(before)


async def _leave(driver: asyncpg.Connection, work_mem: str) -> None:
    await driver.execute("SELECT set_config('work_mem', $1, true)", work_mem)
    await driver.execute("RELEASE SAVEPOINT pokervod_ingest")


@_phase("duplicate_check")
async def _has_duplicate_keys(
    driver: asyncpg.Connection,
    target: _Target,
    staged: _Staged,
    records: Sequence[Sequence[Any]],
    key_index: Sequence[int],
) -> bool:
    """Whether two staged rows share a key (or two keys are NULL): then the checked path runs.

    ON CONFLICT fails on a key updated twice only when the second row changes it again, and
    a joined UPDATE silently takes one of them, so duplicates must be found beforehand for the
    last row to win and the counts to be right. ``records`` are the staged rows (all of them,
    in order): a Python set over their keys answers for a fraction of a GROUP BY on the
    server, and its answer is exact when every key value is a ``str``, an ``int`` or None
    (equal there exactly when equal in PostgreSQL). Other values are left to the server.
    """
    if len(key_index) == 1:
        keys: list[Any] = list(map(operator.itemgetter(key_index[0]), records))
        kinds = set(map(type, keys))
    else:
        keys = list(map(operator.itemgetter(*key_index), records))
        kinds = {type(v) for key in keys for v in key}
    if kinds <= _PLAIN_KEYS:
        return len(set(keys)) != len(keys)
    names = ", ".join(_q(k) for k in target.key)
    found = await driver.fetchval(
        f"SELECT EXISTS (SELECT 1 FROM {_q(staged.name)} GROUP BY {names} HAVING count(*) > 1)"
    )
    return bool(found)


@_phase("sample")
async def _mostly_existing(driver: asyncpg.Connection, target: _Target, staged: _Staged) -> bool:
    """Whether at least half of a sample of about 2,000 staged rows already exist by key."""
    if staged.count == 0:
        return False
    percent = min(100.0, 200_000.0 / staged.count)
    same_key = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in target.key)
    row = await driver.fetchrow(
        f"SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM {SCHEMA}.{_q(target.name)} t "
        f"WHERE {same_key})), count(*) "
        f"FROM {_q(staged.name)} s TABLESAMPLE SYSTEM ({percent:.6f}) REPEATABLE (0)"
    )
    assert row is not None
    existing, sampled = int(row[0]), int(row[1])
    return sampled > 0 and existing * 2 >= sampled


def _check_columns(target: _Target, cols: Sequence[str]) -> None:
    settable = set(target.settable())
    unknown = [c for c in cols if c not in settable]
    if unknown:
        raise ValueError(
            f"{target.name}: cannot write column(s) {', '.join(unknown)} "
            f"(writable: {', '.join(sorted(settable))})"
        )
    missing = [c for c in (*target.key, *target.required()) if c not in cols]
    if missing:
        raise ValueError(f"{target.name}: rows must include {', '.join(dict.fromkeys(missing))}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{target.name}: a column is named twice")


async def _rollback_savepoint(driver: asyncpg.Connection) -> None:
    try:
        await driver.execute("ROLLBACK TO SAVEPOINT pokervod_ingest")
        await driver.execute("RELEASE SAVEPOINT pokervod_ingest")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        log.debug("could not roll back to the ingest savepoint", exc_info=True)


def _upsert_sql(target: _Target, cols: Sequence[str], source: str) -> str:
    table = f"{SCHEMA}.{_q(target.name)}"
    names = ", ".join(_q(c) for c in cols)
    updatable = [c for c in cols if c not in target.key]
    conflict = ", ".join(_q(k) for k in target.key)
    if updatable:
        sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in updatable)
        old = ", ".join(f"t.{_q(c)}" for c in updatable)
        new = ", ".join(f"EXCLUDED.{_q(c)}" for c in updatable)
        # ROW(...) so a single column compares the same way as several.
        action = f"DO UPDATE SET {sets} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"
    else:
        action = "DO NOTHING"
    # xmax is 0 on a freshly inserted row and set (our lock) on a row this statement updated.
    return f"""
        WITH applied AS (
            INSERT INTO {table} AS t ({names})
            {source}
            ON CONFLICT ({conflict}) {action}
            RETURNING (t.xmax = 0) AS inserted
        )
        SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
        FROM applied
    """


@_phase("apply")
async def _apply_fast(
    driver: asyncpg.Connection, target: _Target, cols: Sequence[str], staged: _Staged
) -> tuple[int, int] | None:
    """The statements of the happy path; None when bad data or duplicate keys stop them.

    Both forms run in one savepoint: a bad value in any of them undoes all, and the caller
    falls back to the checked path, which names the rows.
    """
    names = ", ".join(_q(c) for c in cols)
    source = f"SELECT {names} FROM {_q(staged.name)} s"
    updatable = [c for c in cols if c not in target.key]
    rescan = await _mostly_existing(driver, target, staged)
    await driver.execute("SAVEPOINT pokervod_ingest_fast")
    try:
        if rescan and updatable:
            counts = await _apply_rescan(driver, target, cols, staged)
        else:
            if rescan:
                # Key columns only: the rows whose key exists are unchanged by definition;
                # a hash anti-join drops them far cheaper than ON CONFLICT's probe per row.
                source += f" WHERE NOT EXISTS ({_existing(target, staged)})"
            row = await driver.fetchrow(_upsert_sql(target, cols, source))
            assert row is not None
            counts = int(row[0]), int(row[1])
    except asyncpg.PostgresError as exc:
        await driver.execute("ROLLBACK TO SAVEPOINT pokervod_ingest_fast")
        await driver.execute("RELEASE SAVEPOINT pokervod_ingest_fast")
        state = sqlstate(exc) or ""
        if state == SQLState.CARDINALITY_VIOLATION or state[:2] in _BAD_DATA_CLASSES:
            return None
        raise IngestError(
            f"{target.name}: the batch was refused: {_first_line(exc)} (no row could be named: "
            "the error is not about one row's values; nothing was applied)",
            table=target.name,
        ) from exc
    await driver.execute("RELEASE SAVEPOINT pokervod_ingest_fast")
    return counts


def _existing(target: _Target, staged: _Staged) -> str:
    """A subquery that finds staged row ``s`` in the table by its key."""
    same_key = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in target.key)
    return f"SELECT 1 FROM {SCHEMA}.{_q(target.name)} t WHERE {same_key}"


async def _apply_rescan(
    driver: asyncpg.Connection, target: _Target, cols: Sequence[str], staged: _Staged
) -> tuple[int, int]:
    """A rescan (most keys exist, most rows unchanged): update the changed rows in place with
    one joined UPDATE, then insert the new keys.

    The UPDATE's hash join against the table both finds the changed rows and writes them: no
    second lookup per row, as ``INSERT … ON CONFLICT`` would make (its speculative insertion
    probes the key index, locks the row, then updates it). Concurrent writers lose nothing:
    a row another transaction changed meanwhile is re-read and the join and the distinctness
    test re-checked on its newest version (EvalPlanQual) before it is written. The INSERT runs
    as a second statement with a fresh snapshot and keeps ``ON CONFLICT DO UPDATE``: a key
    deleted by another transaction since the UPDATE is inserted again, a key inserted by
    another since then is updated (when its values differ), as the one-statement upsert would.
    Duplicate keys never reach this point (`_has_duplicate_keys`); a key given twice would make
    the UPDATE pick one of the rows at random.
    """
    table = f"{SCHEMA}.{_q(target.name)}"
    updatable = [c for c in cols if c not in target.key]
    sets = ", ".join(f"{_q(c)} = s.{_q(c)}" for c in updatable)
    same_key = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in target.key)
    old = ", ".join(f"t.{_q(c)}" for c in updatable)
    new = ", ".join(f"s.{_q(c)}" for c in updatable)
    status = await driver.execute(
        f"UPDATE {table} AS t SET {sets} FROM {_q(staged.name)} s "
        f"WHERE {same_key} AND ROW({old}) IS DISTINCT FROM ROW({new})"
    )
    updated = int(status.rsplit(" ", 1)[-1])
    names = ", ".join(_q(c) for c in cols)
    row = await driver.fetchrow(
        _upsert_sql(
            target,
            cols,
            f"SELECT {names} FROM {_q(staged.name)} s WHERE NOT EXISTS ({_existing(target, staged)})",
        )
    )
    assert row is not None
    return int(row[0]), updated + int(row[1])


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip()
    return text_.splitlines()[0] if text_ else type(exc).__name__


@_phase("apply_checked")
async def _apply_checked(
    driver: asyncpg.Connection,
    target: _Target,
    cols: Sequence[str],
    staged: _Staged,
    bad: list[BadRow],
    mode: Mode,
    result: UpsertResult,
) -> None:
    """The slow path: number the rows, check every rule, then apply the good rows or refuse."""
    numbered = f"{staged.name}_n"
    # A temporary table written by one COPY and never updated is read back in the order it
    # was written (no synchronized or parallel scans on temp tables): ctid order = input order.
    await driver.execute(
        f"CREATE TEMPORARY TABLE {_q(numbered)} ON COMMIT DROP AS "
        f"SELECT (row_number() OVER (ORDER BY ctid) - 1) AS _ordinal, * FROM {_q(staged.name)}"
    )
    await driver.execute(f"DROP TABLE {_q(staged.name)}")
    key_cols = ", ".join(f"n.{_q(k)}" for k in target.key)
    checks = _checks(target, cols) + await _batch_clash_checks(driver, target, cols, numbered)
    rows = await driver.fetch(
        f"""
        SELECT _ordinal, {", ".join(_q(k) for k in target.key)},
               string_agg(reason, '; ' ORDER BY position) AS reason
        FROM (SELECT n._ordinal, {key_cols}, c.reason, c.position
              FROM {_q(numbered)} n
              CROSS JOIN LATERAL unnest(ARRAY[{", ".join(checks)}]::text[])
                   WITH ORDINALITY AS c(reason, position)
              WHERE c.reason IS NOT NULL) failed
        GROUP BY 1, {", ".join(_q(k) for k in target.key)}
        ORDER BY 1
        """
    )
    for r in rows:
        bad.append(
            BadRow(
                staged.input_index(r["_ordinal"]),
                tuple(r[k] for k in target.key),
                r["reason"],
            )
        )
    bad.sort(key=lambda b: b.index)
    if bad and mode == "all_or_nothing":
        await driver.execute(f"DROP TABLE {_q(numbered)}")
        raise IngestError(_refusal(target.name, bad), table=target.name, bad_rows=bad)
    await driver.execute(
        f"CREATE TEMPORARY TABLE {_q(numbered + '_bad')} (_ordinal bigint PRIMARY KEY) "
        "ON COMMIT DROP"
    )
    if rows:
        await driver.copy_records_to_table(
            numbered + "_bad", records=[(r["_ordinal"],) for r in rows]
        )
    good = (
        f"FROM {_q(numbered)} n WHERE NOT EXISTS "
        f"(SELECT 1 FROM {_q(numbered + '_bad')} b WHERE b._ordinal = n._ordinal)"
    )
    keys = ", ".join(_q(k) for k in target.key)
    partition = ", ".join(f"n.{_q(k)}" for k in target.key)
    dups = await driver.fetch(
        f"""
        SELECT _ordinal, {keys}, kept FROM (
            SELECT n._ordinal, {key_cols},
                   max(n._ordinal) OVER (PARTITION BY {partition}) AS kept
            {good}) d
        WHERE _ordinal <> kept ORDER BY _ordinal
        """
    )
    result.duplicates = [
        DuplicateRow(
            staged.input_index(d["_ordinal"]),
            tuple(d[k] for k in target.key),
            staged.input_index(d["kept"]),
        )
        for d in dups
    ]
    names = ", ".join(_q(c) for c in cols)
    # Last row of each key wins: DISTINCT ON keeps the first of each group in this order.
    source = (
        f"SELECT DISTINCT ON ({partition}) {names} {good} ORDER BY {partition}, n._ordinal DESC"
    )
    await driver.execute("SAVEPOINT pokervod_ingest_fast")
    try:
        row = await driver.fetchrow(_upsert_sql(target, cols, source))
    except asyncpg.PostgresError as exc:
        await driver.execute("ROLLBACK TO SAVEPOINT pokervod_ingest_fast")
        raise IngestError(
            f"{target.name}: the batch was refused: {_first_line(exc)} "
            "(no row could be named: a rule the pre-checks do not cover; nothing was applied)",
            table=target.name,
            bad_rows=bad,
        ) from exc
    await driver.execute("RELEASE SAVEPOINT pokervod_ingest_fast")
    assert row is not None
    result.inserted, result.updated = int(row[0]), int(row[1])
    applied_keys = staged.count - len(rows) - len(result.duplicates)
    result.unchanged = applied_keys - result.applied
    result.bad_rows = bad
    for name in (numbered, numbered + "_bad"):
        await driver.execute(f"DROP TABLE {_q(name)}")


def _refusal(table: str, bad: Sequence[BadRow]) -> str:
    listed = "; ".join(str(b) for b in bad[:_MAX_LISTED])
    more = f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    return f"{table}: {len(bad)} bad row(s), nothing applied: {listed}{more}"


def _checks(target: _Target, cols: Sequence[str]) -> list[str]:  # noqa: C901 (one branch per kind of column rule, read as a table)
    """SQL expressions over staged row ``n``: a reason when the row breaks a rule, else NULL.

    They mirror the table's definition: keys and NOT NULL columns, string lengths, integer
    and numeric ranges, the CHECK constraints whose columns are all in the batch, foreign
    keys, and unique indexes other than the key (against the table and within the batch).
    """
    table = target.table
    checks: list[str] = []
    given = set(cols)
    for name in target.key:
        checks.append(
            f"CASE WHEN n.{_q(name)} IS NULL THEN '{name} (part of the key) is missing' END"
        )
    for name in cols:
        column = table.c[name]
        type_ = column.type
        if not column.nullable and name not in target.key:
            checks.append(f"CASE WHEN n.{_q(name)} IS NULL THEN '{name} must not be null' END")
        if isinstance(type_, String) and type_.length:
            checks.append(
                f"CASE WHEN length(n.{_q(name)}) > {type_.length} "
                f"THEN '{name} is longer than {type_.length} characters' END"
            )
        elif isinstance(type_, Integer | SmallInteger) and not isinstance(type_, BigInteger):
            checks.append(
                f"CASE WHEN n.{_q(name)} NOT BETWEEN -2147483648 AND 2147483647 "
                f"THEN '{name} is out of range for an integer' END"
            )
        elif isinstance(type_, Numeric) and not isinstance(type_, Integer):
            precision, scale = type_.precision, type_.scale or 0
            if precision:
                limit = 10 ** (precision - scale)
                checks.append(
                    f"CASE WHEN abs(round(n.{_q(name)}, {scale})) >= {limit} "
                    f"THEN '{name} is too large for numeric({precision},{scale})' END"
                )
    for constraint in table.constraints:
        sqltext = getattr(constraint, "sqltext", None)
        if sqltext is None:
            continue
        expression = str(sqltext)
        used = {c.name for c in table.columns if re.search(rf"\b{re.escape(c.name)}\b", expression)}
        if used and used <= given:
            # Bare column names resolve to the staged row n (the only relation in scope).
            label = _sql_literal(f"breaks {constraint.name}: {expression}")
            checks.append(f"CASE WHEN ({expression}) IS FALSE THEN {label} END")
    for fk in table.foreign_keys:
        name = fk.parent.name
        if name not in given:
            continue
        parent = fk.column.table
        checks.append(
            f"CASE WHEN n.{_q(name)} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.{_q(parent.name)} p "
            f"WHERE p.{_q(fk.column.name)} = n.{_q(name)}) "
            f"THEN '{name} ' || n.{_q(name)}::text || ' does not exist in {parent.name}' END"
        )
    for column in table.columns:
        # A generated tsvector fails the whole statement (54000) when its lexemes exceed 1 MB;
        # lexemes are never longer than the words they come from, so inputs up to 1 MB pass.
        if column.computed is None or not isinstance(column.type, postgresql.TSVECTOR):
            continue
        expression = str(column.computed.sqltext)
        inputs = [c for c in cols if re.search(rf"\b{re.escape(c)}\b", expression)]
        if inputs:
            total = " + ".join(f"coalesce(octet_length(n.{_q(c)}), 0)" for c in inputs)
            checks.append(
                f"CASE WHEN {total} > {_TSVECTOR_MAX_BYTES} THEN "
                f"{_sql_literal(', '.join(inputs))} || ' too large for full-text search (' || "
                f"({total})::text || ' bytes, at most {_TSVECTOR_MAX_BYTES})' END"
            )
    key_match = " AND ".join(f"o.{_q(k)} IS NOT DISTINCT FROM n.{_q(k)}" for k in target.key)
    for index in table.indexes:
        index_cols = [c.name for c in index.columns]
        if not index.unique or tuple(index_cols) == target.key or not set(index_cols) <= given:
            continue
        same = " AND ".join(f"o.{_q(c)} = n.{_q(c)}" for c in index_cols)
        checks.append(
            f"CASE WHEN EXISTS (SELECT 1 FROM {SCHEMA}.{_q(table.name)} o WHERE {same} "
            f"AND NOT ({key_match})) "
            f"THEN '{', '.join(index_cols)} already used by another row ({index.name})' END"
        )
    return checks


async def _batch_clash_checks(
    driver: asyncpg.Connection, target: _Target, cols: Sequence[str], numbered: str
) -> list[str]:
    """Checks naming every row of the batch that shares a unique value (other than the key)
    with a row of another key: both would be refused by the index, so both are reported.

    The clashing values are collected once with GROUP BY (linear), then looked up per row.
    """
    checks: list[str] = []
    key_row = "ROW(" + ", ".join(_q(k) for k in target.key) + ")"
    for index in target.table.indexes:
        index_cols = [c.name for c in index.columns]
        if not index.unique or tuple(index_cols) == target.key or not set(index_cols) <= set(cols):
            continue
        clash = f"{numbered}_clash_{len(checks)}"
        names = ", ".join(_q(c) for c in index_cols)
        not_null = " AND ".join(f"{_q(c)} IS NOT NULL" for c in index_cols)
        await driver.execute(
            f"CREATE TEMPORARY TABLE {_q(clash)} ON COMMIT DROP AS "
            f"SELECT {names} FROM {_q(numbered)} WHERE {not_null} "
            f"GROUP BY {names} HAVING count(DISTINCT {key_row}) > 1"
        )
        same = " AND ".join(f"c.{_q(c)} = n.{_q(c)}" for c in index_cols)
        label = _sql_literal(
            f"{', '.join(index_cols)} is also given to a row of another key in this batch "
            f"({index.name})"
        )
        checks.append(
            f"CASE WHEN EXISTS (SELECT 1 FROM {_q(clash)} c WHERE {same}) THEN {label} END"
        )
    return checks


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- links ------------------------------------------------------------------------------------


async def _link(
    session: AsyncSession,
    table: Table,
    other: str,
    links: Mapping[uuid.UUID, Iterable[uuid.UUID]] | Iterable[tuple[uuid.UUID, uuid.UUID]],
    *,
    replace: bool,
    mode: Mode,
) -> LinkResult:
    if mode not in ("all_or_nothing", "skip_bad_rows"):
        raise ValueError(f"mode must be 'all_or_nothing' or 'skip_bad_rows', not {mode!r}")
    # A clip listed with no partner is staged as (clip, NULL): "this clip, no links".
    pairs: list[tuple[Any, Any]]
    if isinstance(links, Mapping):
        pairs = []
        for clip_id, others in links.items():
            before = len(pairs)
            pairs.extend((clip_id, o) for o in others)
            if len(pairs) == before:
                pairs.append((clip_id, None))
    else:
        pairs = [tuple(p) for p in links]  # type: ignore[misc]
    result = LinkResult(table=table.name)
    if not pairs:
        return result
    driver = await _driver(session)
    await driver.execute("SAVEPOINT pokervod_ingest")
    try:
        staged, bad = await _stage(
            driver, table, ["hand_clip_id", other], pairs, None, lambda r: tuple(r)
        )
        await _apply_links(driver, table, other, staged, bad, replace, mode, result)
    except BaseException:
        await _rollback_savepoint(driver)
        raise
    await driver.execute("RELEASE SAVEPOINT pokervod_ingest")
    return result


async def _apply_links(
    driver: asyncpg.Connection,
    table: Table,
    other: str,
    staged: _Staged,
    bad: list[BadRow],
    replace: bool,
    mode: Mode,
    result: LinkResult,
) -> None:
    target = f"{SCHEMA}.{_q(table.name)}"
    parent = "tags" if other == "tag_id" else "players"
    s = _q(staged.name)
    rows = await driver.fetch(
        f"""
        SELECT ordinal, hand_clip_id, {other} AS other, reason FROM (
            SELECT (row_number() OVER (ORDER BY ctid) - 1) AS ordinal, hand_clip_id, {other},
                   CASE WHEN hand_clip_id IS NULL THEN 'hand_clip_id is missing'
                        WHEN NOT EXISTS (SELECT 1 FROM {SCHEMA}.hand_clips c WHERE c.id = s.hand_clip_id)
                        THEN 'hand clip ' || hand_clip_id || ' does not exist'
                        WHEN {other} IS NOT NULL
                             AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.{parent} p WHERE p.id = s.{other})
                        THEN '{other[:-3]} ' || {other} || ' does not exist'
                   END AS reason
            FROM {s} s) v
        WHERE reason IS NOT NULL ORDER BY ordinal
        """
    )
    bad.extend(
        BadRow(staged.input_index(r["ordinal"]), (r["hand_clip_id"], r["other"]), r["reason"])
        for r in rows
    )
    bad.sort(key=lambda b: b.index)
    if bad and mode == "all_or_nothing":
        raise IngestError(_refusal(table.name, bad), table=table.name, bad_rows=bad)
    result.bad_rows = bad
    good = (
        f"FROM {s} s WHERE s.{other} IS NOT NULL"
        f" AND EXISTS (SELECT 1 FROM {SCHEMA}.hand_clips c WHERE c.id = s.hand_clip_id)"
        f" AND EXISTS (SELECT 1 FROM {SCHEMA}.{parent} p WHERE p.id = s.{other})"
        if rows
        else f"FROM {s} s WHERE s.{other} IS NOT NULL"
    )
    if replace:
        removed = await driver.fetchval(
            f"""
            WITH gone AS (
                DELETE FROM {target} l
                WHERE l.hand_clip_id IN (SELECT hand_clip_id FROM {s})
                  AND NOT EXISTS (SELECT 1 FROM {s} k
                                  WHERE k.hand_clip_id = l.hand_clip_id AND k.{other} = l.{other})
                RETURNING 1)
            SELECT count(*) FROM gone
            """
        )
        result.removed = int(removed or 0)
    counts = await driver.fetchrow(
        f"""
        WITH wanted AS (SELECT DISTINCT s.hand_clip_id, s.{other} {good}),
             added AS (
                INSERT INTO {target} (hand_clip_id, {other})
                SELECT hand_clip_id, {other} FROM wanted
                ON CONFLICT DO NOTHING
                RETURNING 1)
        SELECT (SELECT count(*) FROM wanted), (SELECT count(*) FROM added)
        """
    )
    assert counts is not None
    result.inserted = int(counts[1])
    result.unchanged = int(counts[0]) - result.inserted
    await driver.execute(f"DROP TABLE {s}")
