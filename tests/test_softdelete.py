"""Soft delete: the helpers, and the opt-in session option that hides deleted rows from every ORM
query and relationship load (session.get, select, lazy and selectin loads)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from pokervod_db.database import async_session_factory
from pokervod_db.models import HandClip, Project, Season, VideoFile
from pokervod_db.softdelete import INCLUDE_DELETED, hide_deleted, soft_delete, undelete
from pokervod_db.testing.factories import HandClipFactory, SeasonFactory


async def _tree(session: AsyncSession) -> tuple[Project, Season, Season]:
    """A project with a live and a soft-deleted season, committed."""
    live = SeasonFactory.create(name="live")
    gone = SeasonFactory.create(name="gone", project=live.project)
    await session.flush()
    await soft_delete(session, gone)
    await session.commit()
    return live.project, live, gone


async def test_soft_delete_sets_deleted_at_once_and_undelete_clears_it(session: AsyncSession):
    season = SeasonFactory.create()
    await session.flush()
    await soft_delete(session, season)
    first = season.deleted_at
    assert first is not None
    await soft_delete(session, season)
    assert season.deleted_at == first  # the first deletion time is kept
    await undelete(session, season)
    await session.commit()
    stored = await session.scalar(select(Season.deleted_at).where(Season.id == season.id))
    assert stored is None


async def test_sessions_show_deleted_rows_unless_asked_to_hide_them(session, engine):
    _project, _live, gone = await _tree(session)
    async with async_session_factory(engine)() as plain:
        assert await plain.get(Season, gone.id) is not None
        names = (await plain.scalars(select(Season.name))).all()
        assert sorted(names) == ["gone", "live"]


async def test_hiding_session_get_and_select_leave_deleted_rows_out(session, engine):
    _project, live, gone = await _tree(session)
    async with async_session_factory(engine, hide_deleted=True)() as hiding:
        assert await hiding.get(Season, gone.id) is None
        assert await hiding.get(Season, live.id) is not None
        seasons = (await hiding.scalars(select(Season))).all()
        assert [s.name for s in seasons] == ["live"]
        count = await hiding.scalar(select(func.count()).select_from(Season))
        assert count == 1  # criteria reach any statement on the model, not only entity loads


async def test_hiding_session_lazy_and_selectin_relationship_loads_leave_deleted_rows_out(
    session, engine
):
    project, _live, _gone = await _tree(session)
    factory: async_sessionmaker[AsyncSession] = async_session_factory(engine)
    async with factory() as hiding:
        hide_deleted(hiding)
        loaded = await hiding.get(Project, project.id)
        assert loaded is not None
        lazy = await hiding.run_sync(lambda _: list(loaded.seasons))  # a lazy load
        assert [s.name for s in lazy] == ["live"]
    async with factory() as hiding:
        hide_deleted(hiding)
        stmt = select(Project).options(selectinload(Project.seasons))
        eager = (await hiding.scalars(stmt)).one()
        assert [s.name for s in eager.seasons] == ["live"]


async def test_hiding_session_many_to_one_load_of_a_deleted_parent_gives_none(session, engine):
    clip = HandClipFactory.create()
    await session.flush()
    await soft_delete(session, clip.video_file)
    await session.commit()
    async with async_session_factory(engine, hide_deleted=True)() as hiding:
        loaded = await hiding.get(HandClip, clip.id)
        assert loaded is not None
        assert await hiding.run_sync(lambda _: loaded.video_file) is None  # lazy many-to-one


async def test_include_deleted_option_shows_deleted_rows_in_a_hiding_session(session, engine):
    _project, _live, gone = await _tree(session)
    async with async_session_factory(engine, hide_deleted=True)() as hiding:
        rows = await hiding.scalars(
            select(Season).where(Season.id == gone.id),
            execution_options={INCLUDE_DELETED: True},
        )
        assert rows.one().name == "gone"
        assert await hiding.get(VideoFile, gone.id) is None  # unrelated lookups unaffected


async def test_undeleted_row_is_visible_again_to_a_hiding_session(session, engine):
    _project, _live, gone = await _tree(session)
    await undelete(session, gone)
    await session.commit()
    async with async_session_factory(engine, hide_deleted=True)() as hiding:
        assert await hiding.get(Season, gone.id) is not None
