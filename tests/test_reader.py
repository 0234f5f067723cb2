"""The session-free read handle (`Database.reader()`, pokervod_db.reader): every hot read gives
what the session form gives, errors are the package's, several statements see one snapshot,
connections go back to the pool whatever happens, and the connection options (timeouts,
search_path) are the engine's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import fastpath, treecache
from pokervod_db import queries as q
from pokervod_db.database import Database, async_session_factory, create_engine
from pokervod_db.errors import (
    ConfigurationError,
    PokervodDBError,
    PoolExhaustedError,
    StatementTimeoutError,
)
from pokervod_db.models import HandClip, Project, VideoFile
from pokervod_db.monitoring import query_stats
from pokervod_db.reader import COMMIT, SNAPSHOT_BEGIN, Reader
from pokervod_db.settings import Settings
from tests.factories import (
    EpisodeFactory,
    HandClipFactory,
    PlayerFactory,
    ProjectFactory,
    TagFactory,
    VideoFileFactory,
)


def _columns(obj: Any) -> dict[str, Any]:
    attrs = sa_inspect(type(obj)).column_attrs
    return {a.key: getattr(obj, a.key) for a in attrs if not a.deferred}


def _clip(clip: HandClip) -> tuple[dict[str, Any], list[uuid.UUID], list[uuid.UUID]]:
    return _columns(clip), [t.id for t in clip.tags], [p.id for p in clip.players]


async def _archive(session: AsyncSession) -> dict[str, Any]:
    """A small archive with live and soft-deleted rows at every level the reads filter."""
    now = datetime.now(UTC)
    ProjectFactory(code="LIVE")
    ProjectFactory(code="GONE", deleted_at=now)
    episode = EpisodeFactory()
    video = VideoFileFactory(episode=episode, file_name="b.mp4")
    VideoFileFactory(episode=episode, file_name="a.mp4")
    VideoFileFactory(episode=episode, file_name="c.mp4", deleted_at=now)
    tag, gone_tag = TagFactory(), TagFactory(deleted_at=now)
    star, other = PlayerFactory(), PlayerFactory()
    for n in range(5):
        HandClipFactory(
            video_file=video, timecode=f"00:00:0{n}", tags=[tag, gone_tag], players=[star, other]
        )
    HandClipFactory(video_file=video, timecode="00:00:09", tags=[tag], deleted_at=now)
    await session.commit()
    return {"episode": episode.id, "video": video.id, "tag": tag.id, "player": star.id}


async def test_every_hot_read_on_a_reader_equals_the_session_form(
    session: AsyncSession, db: Database
) -> None:
    ids = await _archive(session)
    for deleted in (False, True):
        session.expunge_all()
        async with db.reader() as reader:
            for code in ("LIVE", "GONE", "NONE"):
                lean = await q.get_project_by_code(reader, code, include_deleted=deleted)
                full = await q.get_project_by_code(session, code, include_deleted=deleted)
                assert (lean is None) == (full is None)
                if lean is not None and full is not None:
                    assert isinstance(lean, Project) and _columns(lean) == _columns(full)
            files = await q.get_video_files_of_episode(
                reader, ids["episode"], include_deleted=deleted
            )
            expected_files = await q.get_video_files_of_episode(
                session, ids["episode"], include_deleted=deleted
            )
            assert [_columns(f) for f in files] == [_columns(f) for f in expected_files]
            assert files and all(isinstance(f, VideoFile) for f in files)
            clips = await q.get_hand_clips_of_video_file(
                reader, ids["video"], include_deleted=deleted
            )
            expected_clips = await q.get_hand_clips_of_video_file(
                session, ids["video"], include_deleted=deleted
            )
            assert [_clip(c) for c in clips] == [_clip(c) for c in expected_clips]
            assert len(clips) == (6 if deleted else 5)
            for source in (reader, session):
                results = [
                    await q.list_video_files(source, limit=2, include_deleted=deleted),
                    await q.list_video_files(source, limit=2, offset=1, include_deleted=deleted),
                    await q.list_hand_clips(source, limit=4, include_deleted=deleted),
                    await q.get_hand_clips_of_player(source, ids["player"], limit=3),
                    await q.get_hand_clips_of_tag(
                        source, ids["tag"], limit=3, include_deleted=deleted
                    ),
                    await q.count_hand_clips_of_tag(source, ids["tag"], include_deleted=deleted),
                ]
                if source is reader:
                    on_reader = results
            assert on_reader == results
            first = await q.list_hand_clips(reader, limit=2, include_deleted=deleted)
            assert first.next_cursor is not None
            assert await q.list_hand_clips(
                reader, limit=2, after=first.next_cursor, include_deleted=deleted
            ) == await q.list_hand_clips(
                session, limit=2, after=first.next_cursor, include_deleted=deleted
            )
            project = await q.get_project_by_code(session, "LIVE")
            assert project is not None
            assert await q.get_catalog_tree(reader, project.id) == await q.get_catalog_tree(
                session, project.id
            )
        await session.rollback()


async def test_objects_read_on_a_reader_are_detached_and_can_join_a_session(
    session: AsyncSession, db: Database
) -> None:
    ids = await _archive(session)
    async with db.reader() as reader:
        project = await q.get_project_by_code(reader, "LIVE")
        clips = await q.get_hand_clips_of_video_file(reader, ids["video"])
    assert project is not None and sa_inspect(project).detached
    assert all(sa_inspect(c).detached for c in clips)
    assert clips[0].tags[0] is clips[1].tags[0]  # one object per tag, as in a session
    session.expunge_all()
    merged = await session.merge(project, load=False)
    merged.name = "renamed"
    await session.commit()
    async with db.reader() as reader:
        again = await q.get_project_by_code(reader, "LIVE")
    assert again is not None and again.name == "renamed"


async def test_one_statement_reads_send_no_transaction_and_several_share_one_snapshot(
    session: AsyncSession, db: Database
) -> None:
    ids = await _archive(session)
    async with db.reader() as reader:
        with fastpath.capture_statements() as sent:
            await q.get_project_by_code(reader, "LIVE")
            await q.get_hand_clips_of_tag(reader, ids["tag"])
        assert [sql for sql, _ in sent if sql in (SNAPSHOT_BEGIN, COMMIT)] == []
        assert not reader.connection.is_in_transaction()
        with fastpath.capture_statements() as sent:
            await q.get_hand_clips_of_player(reader, ids["player"])
        assert sent[0][0] == SNAPSHOT_BEGIN and sent[-1][0] == COMMIT and len(sent) == 4
        # plan_cache_mode was transaction-local: the next statement plans as before
        assert (await reader.fetch("SELECT current_setting('plan_cache_mode')"))[0][0] == "auto"
        assert not reader.connection.is_in_transaction()

        count = "SELECT count(*) FROM pokervod.projects"
        async with reader.snapshot():
            before = (await reader.fetch(count))[0][0]
            ProjectFactory(code="LATER")
            await session.commit()  # committed by another connection meanwhile
            assert (await reader.fetch(count))[0][0] == before
            async with reader.snapshot():  # nested: joins the outer snapshot
                assert (await reader.fetch(count))[0][0] == before
            # a read of several statements inside a snapshot keeps it and restores its setting
            await q.get_hand_clips_of_player(reader, ids["player"])
            assert (await reader.fetch("SELECT current_setting('plan_cache_mode')"))[0][0] == "auto"
        assert (await reader.fetch(count))[0][0] == before + 1


async def test_code_written_for_a_session_transaction_gets_a_snapshot_until_the_reader_ends(
    db: Database,
) -> None:
    with fastpath.capture_statements() as sent:
        async with db.reader() as reader:
            conn = await fastpath.driver(reader)
            assert conn is reader.connection
            await fastpath.fetch_on(reader, conn, "SELECT 1")
            assert reader.in_snapshot and reader.connection.is_in_transaction()
    assert sent[0][0] == SNAPSHOT_BEGIN and sent[-1][0] == COMMIT


async def test_catalog_tree_on_a_reader_hits_with_one_statement_and_builds_in_a_snapshot(
    session: AsyncSession, db: Database
) -> None:
    await _archive(session)
    project = await q.get_project_by_code(session, "LIVE")
    assert project is not None
    project_id = project.id
    await session.rollback()
    with treecache.using(treecache.TreeCache()):
        with fastpath.capture_statements() as miss:
            async with db.reader() as reader:
                built = await q.get_catalog_tree(reader, project_id)
                assert not reader.in_snapshot  # the build's snapshot ended with it
        with fastpath.capture_statements() as hit:
            async with db.reader() as reader:
                assert await q.get_catalog_tree(reader, project_id) is built
    sqls = [sql for sql, _ in miss]
    assert sqls[0] == treecache.VERSION_SQL and sqls[-1] == treecache.VERSION_SQL
    assert sqls[1] == SNAPSHOT_BEGIN and sqls[-2] == COMMIT
    assert [sql for sql, _ in hit] == [treecache.VERSION_SQL]


async def test_errors_on_a_reader_are_the_packages_and_change_nothing(db: Database) -> None:
    async with db.reader() as reader:
        with pytest.raises(PokervodDBError) as caught:
            await reader.fetch("SELEC 1")
        assert not isinstance(caught.value, asyncpg.PostgresError)
        assert "\n" not in str(caught.value) and "syntax error" in str(caught.value)
        with pytest.raises(PokervodDBError, match="invalid query argument"):
            await q.get_project_by_code(reader, 123)  # type: ignore[arg-type]
        with pytest.raises(PokervodDBError):
            async with reader.snapshot():
                await reader.fetch("SELECT 1/0")
        assert not reader.connection.is_in_transaction()
        assert (await reader.fetch("SELECT 1"))[0][0] == 1  # the connection is still good
        with pytest.raises(ValueError, match="limit"):
            await q.list_hand_clips(reader, limit=0)


async def test_statement_timeout_applies_on_a_reader(db_settings: Settings) -> None:
    database = Database.from_settings(
        db_settings.model_copy(
            update={"statement_timeout_ms": 200, "pool_size": 1, "max_overflow": 0}
        )
    )
    try:
        with pytest.raises(StatementTimeoutError, match="DB_STATEMENT_TIMEOUT_MS"):
            async with database.reader() as reader:
                await reader.fetch("SELECT pg_sleep(5)")
        async with database.reader() as reader:  # the only connection came back, usable
            assert (await reader.fetch("SHOW statement_timeout"))[0][0] == "200ms"
            assert (await reader.fetch("SELECT count(*) FROM projects"))[0][0] >= 0  # search_path
    finally:
        await database.dispose()


async def test_connections_come_back_after_errors_and_cancellation(db_settings: Settings) -> None:
    database = Database.from_settings(
        db_settings.model_copy(update={"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.3})
    )
    try:
        with pytest.raises(RuntimeError):
            async with database.reader() as reader:
                await reader.hold_snapshot()
                raise RuntimeError("the caller's own error")
        async with database.reader() as reader:
            assert not reader.connection.is_in_transaction()
            with pytest.raises(PoolExhaustedError, match="DB_POOL_SIZE"):
                async with database.reader():
                    pass

        async def slow() -> None:
            async with database.reader() as reader, reader.snapshot():
                await reader.fetch("SELECT pg_sleep(5)")

        order: list[str] = []

        async def hold(name: str, seconds: float) -> None:
            async with database.reader() as reader:
                order.append(name)
                await reader.fetch("SELECT pg_sleep($1)", seconds)

        # all out: the next reader waits for the one given back (first come, first served)
        await asyncio.gather(hold("a", 0.1), hold("b", 0.0), hold("c", 0.0))
        assert order == ["a", "b", "c"]
        assert database._readers is not None and database._readers.size == 1

        task = asyncio.create_task(slow())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            async with database.reader() as reader:
                assert not reader.connection.is_in_transaction()
                assert (await reader.fetch("SELECT 1"))[0][0] == 1
        assert database._readers.size == 1  # the cancelled connection was closed, not kept
    finally:
        await database.dispose()
    with pytest.raises(ConfigurationError, match="disposed"):
        async with database.reader():
            pass


async def test_reader_statements_count_in_the_engines_query_stats(db: Database) -> None:
    stats = query_stats(db.engine)
    assert stats is not None
    before = stats.queries
    async with db.reader() as reader:
        await q.get_project_by_code(reader, "NONE")
        assert isinstance(reader, Reader)
    assert stats.queries == before + 1


async def test_reader_is_refused_behind_pgbouncer_and_on_foreign_engines(
    db_settings: Settings,
) -> None:
    engine = create_engine(db_settings.model_copy(update={"pgbouncer": True}))
    try:
        database = Database(engine=engine, session_factory=async_session_factory(engine))
        with pytest.raises(ConfigurationError, match="PgBouncer"):
            database.reader()
    finally:
        await engine.dispose()
