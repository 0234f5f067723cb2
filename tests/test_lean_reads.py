"""The lean request path keeps the session's contract: ORM objects it returns are persistent
in the caller's session, pending changes are flushed first, its statements run in the
session's transaction, and errors are SQLAlchemy's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pokervod_db import fastpath
from pokervod_db import queries as q
from pokervod_db.database import create_engine
from pokervod_db.models import Project
from pokervod_db.monitoring import query_stats
from pokervod_db.settings import Settings
from tests.factories import (
    EpisodeFactory,
    HandClipFactory,
    PlayerFactory,
    ProjectFactory,
    TagFactory,
    VideoFileFactory,
)


async def test_a_project_read_on_the_lean_path_can_be_changed_and_committed(
    session: AsyncSession,
) -> None:
    ProjectFactory(code="WSOP", name="old name")
    await session.commit()
    session.expunge_all()
    project = await q.get_project_by_code(session, "WSOP")
    assert project is not None and project in session and not session.dirty
    assert await q.get_project_by_code(session, "WSOP") is project  # one identity
    project.name = "new name"
    await session.commit()
    session.expunge_all()
    again = await q.get_project_by_code(session, "WSOP")
    assert again is not None and again.name == "new name" and again is not project


async def test_pending_changes_are_flushed_before_a_lean_read(session: AsyncSession) -> None:
    episode = EpisodeFactory()
    await session.commit()
    VideoFileFactory(episode=episode, file_name="new.mp4")  # pending, not flushed
    files = await q.get_video_files_of_episode(session, episode.id)
    assert [f.file_name for f in files] == ["new.mp4"]
    session.add(Project(code="PAD", name="Poker After Dark"))
    assert await q.get_project_by_code(session, "PAD") is not None


async def test_clips_of_a_video_come_with_their_live_tags_and_players(
    session: AsyncSession,
) -> None:
    video = VideoFileFactory()
    tag, gone_tag, player = TagFactory(), TagFactory(), PlayerFactory()
    gone_tag.deleted_at = datetime.now(UTC)
    HandClipFactory(video_file=video, timecode="00:00:02", tags=[tag, gone_tag], players=[player])
    HandClipFactory(video_file=video, timecode="00:00:01")
    await session.commit()
    session.expunge_all()
    clips = await q.get_hand_clips_of_video_file(session, video.id)
    assert [c.timecode for c in clips] == ["00:00:01", "00:00:02"]
    assert clips[0].tags == [] and clips[0].players == []
    assert [t.id for t in clips[1].tags] == [tag.id]
    assert [p.id for p in clips[1].players] == [player.id]
    everything = await q.get_hand_clips_of_video_file(session, video.id, include_deleted=True)
    assert {t.id for t in everything[1].tags} == {tag.id, gone_tag.id}
    assert not session.dirty


async def test_lean_reads_run_in_the_sessions_transaction_and_count_in_the_monitor(
    session: AsyncSession,
) -> None:
    await session.execute(
        text("INSERT INTO pokervod.projects (code, name) VALUES ('GOG', 'uncommitted')")
    )
    stats = query_stats(session.bind)  # type: ignore[arg-type]
    assert stats is not None
    before = stats.queries
    with fastpath.capture_statements() as sent:
        project = await q.get_project_by_code(session, "GOG")
    assert project is not None and project.name == "uncommitted"
    assert len(sent) == 1 and "pokervod.projects" in sent[0][0]
    assert stats.queries == before + 1
    await session.rollback()
    assert await q.get_project_by_code(session, "GOG") is None


async def test_a_failing_lean_statement_raises_sqlalchemys_error_and_the_session_recovers(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        await session.execute(text("SET LOCAL statement_timeout = 1"))
        with pytest.raises(DBAPIError):
            await fastpath.fetch(session, "SELECT pg_sleep(1)")
        await session.rollback()
        assert await q.get_project_by_code(session, "NOPE") is None


async def test_the_orm_tree_variant_loads_the_same_tree_as_orm_objects(
    session: AsyncSession,
) -> None:
    project = ProjectFactory()
    await session.commit()
    tree = await q.get_catalog_tree(session, project.id)
    orm = await q.get_catalog_tree_orm(session, project.id)
    assert tree is not None and orm is not None
    assert (
        isinstance(orm, Project) and orm.id == tree.id and orm.seasons == [] and tree.seasons == ()
    )


async def test_an_idle_pooled_connection_killed_by_the_server_is_replaced_on_checkout(
    db_settings: Settings,
) -> None:
    settings = db_settings.model_copy(update={"pool_pre_ping_idle_s": 0.0, "pool_size": 1})
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        killer = create_engine(db_settings)
        async with killer.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        await killer.dispose()
        async with engine.connect() as conn:  # the ping finds it dead; the pool reconnects
            assert (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()
