"""Soft delete: helpers to mark rows deleted or live again, and an opt-in session option that
hides soft-deleted rows from every ORM query and relationship load.

Every entity table carries ``deleted_at`` (`TimestampMixin`). `queries.py` filters it itself;
other blocks that load through the ORM (``session.get``, ``select(Model)``, ``project.seasons``)
switch the filter on per session::

    sessions = async_session_factory(engine, hide_deleted=True)   # every session of a factory
    hide_deleted(session)                                          # or one session
    await session.execute(stmt, execution_options={INCLUDE_DELETED: True})  # one statement back

The filter is SQLAlchemy's `with_loader_criteria`, added in a ``do_orm_execute`` listener, so it
also reaches lazy and selectin relationship loads of the objects those queries return. Objects
already in the session's identity map are returned by ``session.get`` without a query: a row
soft-deleted in the same session stays visible there until the session is closed or expunged.
Soft delete does not cascade: the seasons of a deleted project stay live.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from pokervod_db.models.base import TimestampMixin

HIDE_DELETED = "pokervod_hide_deleted"
"""Key in ``session.info`` (true: hide soft-deleted rows) and execution option of the same name."""

INCLUDE_DELETED = "pokervod_include_deleted"
"""Execution option: this statement sees soft-deleted rows even in a hiding session."""

__all__ = ["HIDE_DELETED", "INCLUDE_DELETED", "hide_deleted", "soft_delete", "undelete"]


def hide_deleted(session: AsyncSession | Session, hide: bool = True) -> None:
    """Hide (or show again) soft-deleted rows in every ORM load of ``session``."""
    target = session.sync_session if isinstance(session, AsyncSession) else session
    target.info[HIDE_DELETED] = hide


async def soft_delete(session: AsyncSession, *objects: TimestampMixin) -> None:
    """Mark ``objects`` deleted at the transaction's time (``now()``, as created_at) and flush.

    Objects already deleted keep their first ``deleted_at``.
    """
    now = await session.scalar(select(func.now()))
    for obj in objects:
        if obj.deleted_at is None:
            obj.deleted_at = now
    await session.flush()


async def undelete(session: AsyncSession, *objects: TimestampMixin) -> None:
    """Make soft-deleted ``objects`` live again and flush."""
    for obj in objects:
        obj.deleted_at = None
    await session.flush()


@event.listens_for(Session, "do_orm_execute")
def _hide_deleted_rows(state: ORMExecuteState) -> None:
    options = state.execution_options
    if not state.is_select or state.is_column_load or options.get(INCLUDE_DELETED, False):
        return
    if not options.get(HIDE_DELETED, state.session.info.get(HIDE_DELETED, False)):
        return
    state.statement = state.statement.options(
        with_loader_criteria(TimestampMixin, _live, include_aliases=True)
    )


def _live(cls: Any) -> Any:
    return cls.deleted_at.is_(None)
