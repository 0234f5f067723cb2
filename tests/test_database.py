"""Sessions, transactions, error translation and the delete rules, on a private database at head."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db import models
from pokervod_db.catalog import CatalogTreeResult, SeasonFailure, create_catalog_tree
from pokervod_db.database import Database, get_db, transaction
from pokervod_db.errors import (
    ConstraintViolationError,
    DuplicateError,
    IntegrityViolationError,
    PokervodDBError,
    translate,
    translated,
)
from pokervod_db.settings import Settings
from tests.factories import (
    EpisodeFactory,
    GoogleSheetSyncFactory,
    HandClipFactory,
    NASFileFactory,
    NASFolderFactory,
    PlayerFactory,
    ProjectFactory,
    TagFactory,
)


async def _count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- factories ----------------------------------------------------------------------------------


async def test_every_factory_builds_a_row_that_the_database_accepts(session: AsyncSession):
    clip = HandClipFactory(tags=[TagFactory()], players=[PlayerFactory()])
    NASFileFactory(video_file=clip.video_file)
    GoogleSheetSyncFactory()
    await session.commit()
    for model in models.ENTITY_MODELS:
        assert await _count(session, model) >= 1, model.__name__


# --- errors a caller can tell apart -------------------------------------------------------------


async def test_unique_violation_raises_duplicate_error_naming_the_index(session: AsyncSession):
    ProjectFactory(code="WSOP")
    await session.commit()
    ProjectFactory(code="WSOP")
    with pytest.raises(DuplicateError) as info, translated():
        await session.flush()
    await session.rollback()
    assert info.value.constraint == "ix_projects_code"
    assert "duplicate" in str(info.value) and "\n" not in str(info.value)
    assert info.value.__cause__ is not None  # chained to the driver's error


async def test_check_violation_raises_constraint_violation_not_duplicate(session: AsyncSession):
    season = models.Season(project=ProjectFactory(), year=1800, name="too early")
    session.add(season)
    with pytest.raises(IntegrityViolationError) as info, translated():
        await session.flush()
    await session.rollback()
    assert type(info.value) is ConstraintViolationError
    assert info.value.constraint == "ck_seasons_year_range"


async def test_foreign_key_violation_raises_constraint_violation_with_fk_name(
    session: AsyncSession,
):
    session.add(models.Season(project_id=uuid.uuid4(), year=2024, name="orphan"))
    with pytest.raises(ConstraintViolationError) as info, translated():
        await session.flush()
    await session.rollback()
    assert info.value.constraint == "fk_seasons_project_id_projects"


async def test_not_null_violation_raises_constraint_violation(session: AsyncSession):
    with pytest.raises(ConstraintViolationError), translated():
        await session.execute(text("INSERT INTO pokervod.projects (code) VALUES ('X')"))
    await session.rollback()


def test_translate_maps_psycopg_errors_like_asyncpg_errors(db_settings: Settings):
    from pokervod_db.database import create_sync_engine

    engine = create_sync_engine(db_settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO pokervod.players (name) VALUES ('dup')"))
            with pytest.raises(DuplicateError) as dup, translated():
                conn.execute(text("INSERT INTO pokervod.players (name) VALUES ('dup')"))
            conn.rollback()
            with pytest.raises(ConstraintViolationError) as check, translated():
                conn.execute(
                    text("INSERT INTO pokervod.players (name, wsop_bracelets) VALUES ('x', -1)")
                )
            conn.rollback()
    finally:
        engine.dispose()
    assert dup.value.constraint == "ix_players_name"
    assert check.value.constraint == "ck_players_wsop_bracelets_non_negative"


def test_translate_passes_package_errors_through_and_wraps_unknown_ones():
    original = DuplicateError("x", constraint="c")
    assert translate(original) is original
    wrapped = translate(ValueError("boom"))
    assert isinstance(wrapped, PokervodDBError) and "boom" in str(wrapped)


# --- delete rules (schema.md: cascade down the tree, set null from files and clips) -------------


async def test_deleting_a_project_cascades_down_the_tree_and_keeps_files_and_clips(
    session: AsyncSession,
):
    clip = HandClipFactory()
    video = clip.video_file
    nas = NASFileFactory(video_file=video)
    project = clip.episode.event.season.project
    await session.commit()
    ids = {"clip": clip.id, "video": video.id, "nas": nas.id}

    # Plain SQL, so that the database's rules are tested, not the ORM's cascades.
    await session.execute(text("DELETE FROM pokervod.projects WHERE id = :id"), {"id": project.id})
    await session.commit()
    session.expunge_all()

    for model in (models.Project, models.Season, models.Event, models.Episode):
        assert await _count(session, model) == 0, model.__name__
    video_row = await session.get(models.VideoFile, ids["video"])
    clip_row = await session.get(models.HandClip, ids["clip"])
    assert video_row is not None and video_row.episode_id is None
    assert clip_row is not None and clip_row.episode_id is None
    assert clip_row.video_file_id == ids["video"]  # the file still exists, so the link stays
    nas_row = await session.get(models.NASFile, ids["nas"])
    assert nas_row is not None and nas_row.video_file_id == ids["video"]


async def test_deleting_a_video_file_sets_null_on_clips_and_nas_file(session: AsyncSession):
    clip = HandClipFactory()
    nas = NASFileFactory(video_file=clip.video_file)
    await session.commit()
    await session.execute(
        text("DELETE FROM pokervod.video_files WHERE id = :id"), {"id": clip.video_file_id}
    )
    await session.commit()
    session.expunge_all()
    clip_row = await session.get(models.HandClip, clip.id)
    nas_row = await session.get(models.NASFile, nas.id)
    assert clip_row is not None and clip_row.video_file_id is None
    assert clip_row.episode_id is not None  # the episode link is untouched
    assert nas_row is not None and nas_row.video_file_id is None


async def test_deleting_a_nas_folder_sets_null_on_its_files(session: AsyncSession):
    nas = NASFileFactory(folder=NASFolderFactory())
    await session.commit()
    await session.execute(text("DELETE FROM pokervod.nas_folders"))
    await session.commit()
    session.expunge_all()
    row = await session.get(models.NASFile, nas.id)
    assert row is not None and row.folder_id is None


async def test_deleting_an_episode_through_the_orm_keeps_its_files_and_clips(session: AsyncSession):
    clip = HandClipFactory()
    episode = clip.episode
    await session.commit()
    await session.delete(episode)
    await session.commit()
    session.expunge_all()
    clip_row = await session.get(models.HandClip, clip.id)
    video_row = await session.get(models.VideoFile, clip.video_file_id)
    assert clip_row is not None and clip_row.episode_id is None
    assert video_row is not None and video_row.episode_id is None


async def test_deleting_a_project_through_the_orm_removes_its_whole_tree(session: AsyncSession):
    episode = EpisodeFactory()
    project = episode.event.season.project
    await session.commit()
    await session.delete(project)
    await session.commit()
    for model in (models.Project, models.Season, models.Event, models.Episode):
        assert await _count(session, model) == 0, model.__name__


@pytest.mark.parametrize("deleted", ["hand_clips", "tags", "players"])
async def test_link_rows_are_removed_with_their_clip_tag_or_player(session: AsyncSession, deleted):
    tag, player = TagFactory(), PlayerFactory()
    clip = HandClipFactory(tags=[tag], players=[player])
    await session.commit()
    victim = {"hand_clips": clip.id, "tags": tag.id, "players": player.id}[deleted]
    await session.execute(text(f"DELETE FROM pokervod.{deleted} WHERE id = :id"), {"id": victim})
    await session.commit()
    links = {
        t: await session.scalar(text(f"SELECT count(*) FROM pokervod.{t}"))
        for t in ("hand_clip_tags", "hand_clip_players")
    }
    expected = {
        "hand_clips": {"hand_clip_tags": 0, "hand_clip_players": 0},
        "tags": {"hand_clip_tags": 0, "hand_clip_players": 1},
        "players": {"hand_clip_tags": 1, "hand_clip_players": 0},
    }[deleted]
    assert links == expected
    # The other side survives.
    assert await _count(session, models.HandClip) == (0 if deleted == "hand_clips" else 1)
    assert await _count(session, models.Tag) == (0 if deleted == "tags" else 1)


async def test_linking_the_same_tag_twice_is_a_duplicate(session: AsyncSession):
    tag = TagFactory()
    clip = HandClipFactory(tags=[tag])
    await session.commit()
    with pytest.raises(DuplicateError) as info, translated():
        await session.execute(
            models.hand_clip_tags.insert().values(hand_clip_id=clip.id, tag_id=tag.id)
        )
    assert info.value.constraint == "pk_hand_clip_tags"


# --- updated_at ---------------------------------------------------------------------------------


def test_plain_sql_update_moves_updated_at_and_keeps_created_at(db_settings: Settings):
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        created, updated = conn.execute(
            "INSERT INTO pokervod.tags (category, name) VALUES ('emotion', 'x') "
            "RETURNING created_at, updated_at"
        ).fetchone()  # type: ignore[misc]
        row = conn.execute(
            "UPDATE pokervod.tags SET name_display = 'X' RETURNING created_at, updated_at"
        ).fetchone()
    assert row is not None
    assert row[0] == created
    assert row[1] > updated


def test_bulk_update_moves_updated_at_of_every_row_even_when_set_explicitly(db_settings: Settings):
    with psycopg.connect(db_settings.libpq_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pokervod.players (name) SELECT 'p' || g FROM generate_series(1, 5) g"
        )
        before = conn.execute("SELECT max(updated_at) FROM pokervod.players").fetchone()[0]  # type: ignore[index]
        # Even a caller that writes an old value cannot freeze updated_at.
        conn.execute("UPDATE pokervod.players SET wsop_bracelets = 1, updated_at = '2000-01-01'")
        rows = conn.execute("SELECT updated_at FROM pokervod.players").fetchall()
    assert all(r[0] > before for r in rows)


async def test_orm_update_moves_updated_at_and_object_shows_it_after_flush(session: AsyncSession):
    project = ProjectFactory()
    await session.commit()
    first = project.updated_at
    project.name = "renamed"
    await session.flush()
    # No refresh: eager defaults / server_onupdate fetch the trigger's value on flush.
    assert project.updated_at > first
    in_db = await session.scalar(
        select(models.Project.updated_at).where(models.Project.id == project.id)
    )
    assert project.updated_at == in_db
    assert project.created_at < project.updated_at


async def test_orm_bulk_update_statement_moves_updated_at(session: AsyncSession):
    p1, p2 = ProjectFactory(), ProjectFactory()
    await session.commit()
    old = {p1.id: p1.updated_at, p2.id: p2.updated_at}
    await session.execute(update(models.Project).values(is_active=False))
    await session.commit()
    rows = (await session.execute(select(models.Project.id, models.Project.updated_at))).all()
    assert all(updated > old[pid] for pid, updated in rows)


# --- get_db, transaction, Database --------------------------------------------------------------


async def test_get_db_commits_when_the_request_succeeds(
    session_factory: async_sessionmaker[AsyncSession],
):
    agen = get_db(session_factory)
    s = await agen.__anext__()
    s.add(models.Player(name="committed"))
    with pytest.raises(StopAsyncIteration):
        await agen.__anext__()
    async with session_factory() as check:
        assert await _count(check, models.Player) == 1


async def test_get_db_rolls_back_when_the_request_fails(
    session_factory: async_sessionmaker[AsyncSession],
):
    agen = get_db(session_factory)
    s = await agen.__anext__()
    s.add(models.Player(name="lost"))
    await s.flush()  # the row reached the server inside the transaction
    with pytest.raises(RuntimeError, match="handler failed"):
        await agen.athrow(RuntimeError("handler failed"))
    async with session_factory() as check:
        assert await _count(check, models.Player) == 0


async def test_transaction_commits_on_success_and_rolls_back_on_error(
    session_factory: async_sessionmaker[AsyncSession],
):
    async with transaction(session_factory) as s:
        s.add(models.Player(name="kept"))
    with pytest.raises(ValueError, match="later failure"):
        async with transaction(session_factory) as s:
            s.add(models.Player(name="dropped"))
            await s.flush()
            raise ValueError("later failure")
    async with session_factory() as check:
        names = (await check.scalars(select(models.Player.name))).all()
    assert names == ["kept"]


async def test_database_object_exposes_get_db_and_transaction(db_settings: Settings):
    database = Database.from_settings(db_settings)
    try:
        async with database.transaction() as s:
            s.add(models.Tag(category="emotion", name="joy"))
        async for s in database.get_db():
            assert await _count(s, models.Tag) == 1
    finally:
        await database.dispose()


async def test_objects_stay_readable_after_commit(
    session_factory: async_sessionmaker[AsyncSession],
):
    async with transaction(session_factory) as s:
        player = models.Player(name="readable")
        s.add(player)
    # expire_on_commit=False: no lazy load (which would fail outside the session's greenlet).
    assert player.name == "readable" and player.is_active is True


# --- create_catalog_tree (a savepoint per season) --------------------------------------------------


async def test_create_catalog_tree_keeps_good_seasons_and_reports_the_bad_one(
    session_factory: async_sessionmaker[AsyncSession],
):
    reported: list[SeasonFailure] = []
    tree = {
        "project": {"code": "WSOP", "name": "World Series of Poker"},
        "seasons": [
            {"year": 2023, "name": "2023 WSOP"},
            {"year": 1800, "name": "impossible year"},
            {"year": 2024, "name": "2024 WSOP"},
        ],
    }
    async with transaction(session_factory) as s:
        result = await create_catalog_tree(s, tree, on_failure=reported.append)
    assert isinstance(result, CatalogTreeResult)
    assert [season.year for season in result.seasons] == [2023, 2024]
    assert [(f.index, f.data["year"]) for f in result.failed] == [(1, 1800)]
    assert "ck_seasons_year_range" in result.failed[0].error
    assert reported == result.failed

    async with session_factory() as check:
        years = (await check.scalars(select(models.Season.year).order_by(models.Season.year))).all()
        assert years == [2023, 2024]
        assert await _count(check, models.Project) == 1


async def test_create_catalog_tree_reports_every_bad_season_and_keeps_project_usable(
    session_factory: async_sessionmaker[AsyncSession],
):
    tree = {
        "project": {"code": "HCL", "name": "Hustler"},
        "seasons": [
            {"year": 3000, "name": "future"},
            {"year": 2024, "name": "x" * 201},  # longer than varchar(200)
            {"year": 2022, "name": "ok"},
        ],
    }
    async with transaction(session_factory) as s:
        result = await create_catalog_tree(s, tree)
        # The project object is still loaded and usable after the rolled-back savepoints.
        assert result.project.code == "HCL"
        assert [f.index for f in result.failed] == [0, 1]
        assert [season.name for season in result.seasons] == ["ok"]
    async with session_factory() as check:
        assert await _count(check, models.Season) == 1


async def test_create_catalog_tree_with_a_duplicate_project_raises_duplicate_error(
    session_factory: async_sessionmaker[AsyncSession],
):
    async with transaction(session_factory) as s:
        s.add(models.Project(code="GOG", name="first"))
    with pytest.raises(DuplicateError):
        async with transaction(session_factory) as s:
            await create_catalog_tree(
                s, {"project": {"code": "GOG", "name": "again"}, "seasons": []}
            )
    async with session_factory() as check:
        assert await _count(check, models.Project) == 1


# --- concurrency smoke: the pool serves parallel sessions ---------------------------------------


async def test_parallel_sessions_use_separate_connections(engine: AsyncEngine):
    from pokervod_db.database import async_session_factory

    factory = async_session_factory(engine)

    async def backend_pid() -> int:
        async with factory() as s:
            pid = await s.scalar(text("SELECT pg_backend_pid() FROM pg_sleep(0.2)"))
            return int(pid or 0)

    pids = await asyncio.gather(*(backend_pid() for _ in range(3)))
    assert len(set(pids)) == 3


def test_timestamps_are_timezone_aware():
    column = models.Project.__table__.c.created_at
    assert column.type.timezone is True  # type: ignore[attr-defined]


async def test_check_connection_to_a_server_that_never_answers_fails_in_one_line():
    import socket

    from pokervod_db.database import check_connection, create_engine
    from pokervod_db.errors import DatabaseUnavailableError

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # accepted by the kernel, never answered
        port = listener.getsockname()[1]
        settings = Settings(
            _env_file=None,
            DATABASE_URL=f"postgresql://u:pw@127.0.0.1:{port}/db",
            DB_CONNECT_TIMEOUT=1,
        )
        engine = create_engine(settings)
        try:
            with pytest.raises(DatabaseUnavailableError) as info:
                await check_connection(engine, wait_s=3)
        finally:
            await engine.dispose()
    assert "timed out" in str(info.value) and ":***@127.0.0.1" in str(info.value)


def test_catalog_tree_names_are_still_importable_from_database() -> None:
    import pokervod_db.catalog as catalog
    import pokervod_db.database as database

    for name in ("create_catalog_tree", "CatalogTreeResult", "SeasonFailure"):
        assert getattr(database, name) is getattr(catalog, name)
    with pytest.raises(AttributeError):
        _ = database.no_such_name
