"""The catalog tree cache: versions kept by the triggers of 007_catalog_versions, and reads that
serve the cached tree only while the project's version is the one it was built at."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pokervod_db import backup, fastpath, treecache
from pokervod_db import queries as q
from pokervod_db.models import Episode, Event, Project, Season
from pokervod_db.settings import Settings
from tests.factories import EpisodeFactory, EventFactory, ProjectFactory, SeasonFactory

Ids = dict[str, uuid.UUID]


@pytest.fixture
async def ids(session: AsyncSession) -> Ids:
    """Two projects ``a`` and ``b``, each with a season, an event and two episodes."""
    made: Ids = {}
    for name in ("a", "b"):
        project = ProjectFactory(code=f"TREE_{name.upper()}")
        season = SeasonFactory(project=project, year=2024)
        event = EventFactory(season=season, event_number=1)
        first = EpisodeFactory(event=event, episode_number=1, title=f"{name} first")
        second = EpisodeFactory(event=event, episode_number=2, title=f"{name} second")
        await session.flush()
        made |= {
            name: project.id,
            f"{name}_season": season.id,
            f"{name}_event": event.id,
            f"{name}_ep1": first.id,
            f"{name}_ep2": second.id,
        }
    await session.commit()
    session.expunge_all()
    return made


async def _versions(session: AsyncSession) -> dict[uuid.UUID, uuid.UUID]:
    rows = await session.execute(text("SELECT project_id, version FROM pokervod.catalog_versions"))
    return {r[0]: r[1] for r in rows}


def _titles(tree: q.CatalogTree | None) -> list[str | None]:
    assert tree is not None
    return [ep.title for s in tree.seasons for e in s.events for ep in e.episodes]


# --- the versions ------------------------------------------------------------------------------


async def test_every_project_has_a_version_and_a_new_project_gets_one(
    session: AsyncSession, ids: Ids
) -> None:
    versions = await _versions(session)
    assert set(versions) == {ids["a"], ids["b"]}
    assert len(set(versions.values())) == 2
    project = ProjectFactory(code="TREE_C")
    await session.flush()
    assert project.id in await _versions(session)


def sql(statement: str) -> Callable[[AsyncSession, Ids], Awaitable[None]]:
    async def run(session: AsyncSession, ids: Ids) -> None:
        names = [n for n in ids if f":{n}" in statement]
        await session.execute(text(statement), {n: ids[n] for n in names})

    return run


async def _add_season(session: AsyncSession, ids: Ids) -> None:
    SeasonFactory(project=await session.get(Project, ids["a"]), year=2030)
    await session.flush()


async def _add_event(session: AsyncSession, ids: Ids) -> None:
    EventFactory(season=await session.get(Season, ids["b_season"]), event_number=9)
    await session.flush()


async def _add_episode(session: AsyncSession, ids: Ids) -> None:
    EpisodeFactory(event=await session.get(Event, ids["a_event"]), episode_number=9)
    await session.flush()


async def _delete_episode_orm(session: AsyncSession, ids: Ids) -> None:
    episode = await session.get(Episode, ids["b_ep1"])
    await session.delete(episode)
    await session.flush()


CHANGES: list[tuple[str, Callable[[AsyncSession, Ids], Awaitable[None]], set[str]]] = [
    ("rename project", sql("UPDATE pokervod.projects SET name = 'x' WHERE id = :a"), {"a"}),
    (
        "soft-delete project",
        sql("UPDATE pokervod.projects SET deleted_at = now() WHERE id = :b"),
        {"b"},
    ),
    ("insert season", _add_season, {"a"}),
    ("update season", sql("UPDATE pokervod.seasons SET name = 'x' WHERE id = :a_season"), {"a"}),
    ("delete season", sql("DELETE FROM pokervod.seasons WHERE id = :b_season"), {"b"}),
    ("insert event", _add_event, {"b"}),
    ("update event", sql("UPDATE pokervod.events SET name = 'x' WHERE id = :b_event"), {"b"}),
    ("delete event", sql("DELETE FROM pokervod.events WHERE id = :a_event"), {"a"}),
    ("insert episode", _add_episode, {"a"}),
    ("update episode", sql("UPDATE pokervod.episodes SET title = 'x' WHERE id = :a_ep2"), {"a"}),
    ("delete episode (ORM)", _delete_episode_orm, {"b"}),
    (
        "move episode to another project's event",
        sql("UPDATE pokervod.episodes SET event_id = :b_event WHERE id = :a_ep1"),
        {"a", "b"},
    ),
    (
        "move event to another project's season",
        sql("UPDATE pokervod.events SET season_id = :a_season WHERE id = :b_event"),
        {"a", "b"},
    ),
    (
        "move season to another project",
        sql("UPDATE pokervod.seasons SET project_id = :b WHERE id = :a_season"),
        {"a", "b"},
    ),
    (
        "one statement over both projects",
        sql("UPDATE pokervod.episodes SET duration_seconds = 1 WHERE id IN (:a_ep2, :b_ep2)"),
        {"a", "b"},
    ),
    (
        "an update that matches no row",
        sql("UPDATE pokervod.episodes SET title = 'x' WHERE false"),
        set(),
    ),
    ("truncate", sql("TRUNCATE pokervod.episodes CASCADE"), {"a", "b"}),
]


@pytest.mark.parametrize(
    ("change", "expected"), [(c[1], c[2]) for c in CHANGES], ids=[c[0] for c in CHANGES]
)
async def test_a_write_changes_the_version_of_exactly_the_projects_it_touches(
    session: AsyncSession,
    ids: Ids,
    change: Callable[[AsyncSession, Ids], Awaitable[None]],
    expected: set[str],
) -> None:
    before = await _versions(session)
    await change(session, ids)
    await session.commit()
    after = await _versions(session)
    changed = {name for name in ("a", "b") if before[ids[name]] != after[ids[name]]}
    assert changed == expected


async def test_deleting_a_project_drops_its_version_and_keeps_the_others(
    session: AsyncSession, ids: Ids
) -> None:
    before = await _versions(session)
    await session.execute(text("DELETE FROM pokervod.projects WHERE id = :a"), {"a": ids["a"]})
    await session.commit()
    assert await _versions(session) == {ids["b"]: before[ids["b"]]}


# --- the cache ---------------------------------------------------------------------------------


async def test_a_second_read_is_one_statement_and_the_same_immutable_object(
    session: AsyncSession, ids: Ids
) -> None:
    first = await q.get_catalog_tree(session, ids["a"])
    first_json = await q.get_catalog_tree_json(session, ids["a"])
    await session.rollback()
    with fastpath.capture_statements() as sent:
        again = await q.get_catalog_tree(session, ids["a"])
        again_json = await q.get_catalog_tree_json(session, ids["a"])
    assert [s for s, _ in sent] == [treecache.VERSION_SQL, treecache.VERSION_SQL]
    assert again is first and again_json is first_json
    assert _titles(again) == ["a first", "a second"]
    assert json.loads(again_json or "")["code"] == "TREE_A"


async def test_the_cached_tree_cannot_be_changed_by_a_caller(
    session: AsyncSession, ids: Ids
) -> None:
    tree = await q.get_catalog_tree(session, ids["a"])
    assert tree is not None
    season = tree.seasons[0]
    with pytest.raises(AttributeError):
        tree.seasons.append(season)  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        season.events[0].episodes[0] = season.events[0].episodes[1]  # type: ignore[index]
    with pytest.raises(AttributeError):
        season.events[0].name = "changed"  # type: ignore[misc]
    assert isinstance(season.events, tuple) and isinstance(season.events[0].episodes, tuple)
    assert _titles(await q.get_catalog_tree(session, ids["a"])) == ["a first", "a second"]


async def test_a_committed_change_elsewhere_is_seen_by_the_next_read(
    session_factory: async_sessionmaker[AsyncSession], ids: Ids
) -> None:
    async with session_factory() as reader, session_factory() as writer:
        assert _titles(await q.get_catalog_tree(reader, ids["a"])) == ["a first", "a second"]
        assert "a first" in (await q.get_catalog_tree_json(reader, ids["a"]) or "")
        await reader.rollback()
        await writer.execute(
            text("UPDATE pokervod.episodes SET title = 'renamed' WHERE id = :e"),
            {"e": ids["a_ep1"]},
        )
        await writer.commit()
        assert _titles(await q.get_catalog_tree(reader, ids["a"])) == ["renamed", "a second"]
        document = await q.get_catalog_tree_json(reader, ids["a"]) or ""
        assert "renamed" in document and "a first" not in document
        # the other project's entry was not disturbed
        cache = treecache.cache_for(reader.bind)
        await q.get_catalog_tree(reader, ids["b"])
        hits = cache.hits
        await q.get_catalog_tree(reader, ids["b"])
        assert cache.hits == hits + 1


async def test_own_uncommitted_writes_are_read_and_a_rollback_brings_the_old_tree_back(
    session: AsyncSession, ids: Ids
) -> None:
    assert _titles(await q.get_catalog_tree(session, ids["a"])) == ["a first", "a second"]
    # an ORM change still pending in the session: the read flushes it first
    EpisodeFactory(event=await session.get(Event, ids["a_event"]), episode_number=3, title="new")
    assert _titles(await q.get_catalog_tree(session, ids["a"])) == ["a first", "a second", "new"]
    assert '"new"' in (await q.get_catalog_tree_json(session, ids["a"]) or "")
    await session.rollback()
    assert _titles(await q.get_catalog_tree(session, ids["a"])) == ["a first", "a second"]
    assert '"new"' not in (await q.get_catalog_tree_json(session, ids["a"]) or "")


async def test_a_tree_built_inside_the_writing_transaction_is_served_after_its_commit(
    session_factory: async_sessionmaker[AsyncSession], ids: Ids
) -> None:
    async with session_factory() as writer, session_factory() as reader:
        await writer.execute(
            text("UPDATE pokervod.episodes SET title = 'mine' WHERE id = :e"), {"e": ids["a_ep2"]}
        )
        # not committed: another transaction still gets the committed tree
        assert _titles(await q.get_catalog_tree(reader, ids["a"])) == ["a first", "a second"]
        await reader.rollback()
        assert _titles(await q.get_catalog_tree(writer, ids["a"])) == ["a first", "mine"]
        await writer.commit()
        cache = treecache.cache_for(reader.bind)
        hits = cache.hits
        with fastpath.capture_statements() as sent:
            tree = await q.get_catalog_tree(reader, ids["a"])
        assert _titles(tree) == ["a first", "mine"]
        assert len(sent) == 1 and cache.hits == hits + 1


async def test_a_tree_read_while_a_commit_lands_is_not_stored_under_the_older_version(
    session_factory: async_sessionmaker[AsyncSession], ids: Ids, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is read again after the build: a commit between the two reads (READ
    COMMITTED: each statement its own snapshot) leaves the cache without that entry."""
    cache = treecache.TreeCache()
    async with session_factory() as reader, session_factory() as writer:
        original = fastpath.fetch_on
        calls = 0

        async def commit_after_the_seasons(*args: Any) -> Any:
            nonlocal calls
            rows = await original(*args)
            calls += 1
            if calls == 3:  # version, project, seasons: now a commit lands elsewhere
                await writer.execute(
                    text("UPDATE pokervod.episodes SET title = 'late' WHERE id = :e"),
                    {"e": ids["a_ep1"]},
                )
                await writer.commit()
            return rows

        monkeypatch.setattr(fastpath, "fetch_on", commit_after_the_seasons)
        with treecache.using(cache):
            tree = await q.get_catalog_tree(reader, ids["a"])
        monkeypatch.undo()
        assert _titles(tree) == ["late", "a second"]  # later statements saw the commit
        assert len(cache) == 0
        await reader.rollback()
        with treecache.using(cache):
            assert _titles(await q.get_catalog_tree(reader, ids["a"])) == ["late", "a second"]
        assert len(cache) == 1


async def test_missing_projects_and_missing_version_rows_are_read_without_the_cache(
    session: AsyncSession, ids: Ids
) -> None:
    assert await q.get_catalog_tree(session, uuid.uuid4()) is None
    assert await q.get_catalog_tree_json(session, uuid.uuid4()) is None
    await session.execute(
        text("DELETE FROM pokervod.catalog_versions WHERE project_id = :a"), {"a": ids["a"]}
    )
    cache = treecache.TreeCache()
    with treecache.using(cache):
        assert _titles(await q.get_catalog_tree(session, ids["a"])) == ["a first", "a second"]
    assert len(cache) == 0


async def test_soft_deleted_project_is_none_unless_asked_and_both_are_cached_apart(
    session: AsyncSession, ids: Ids
) -> None:
    await session.execute(
        text("UPDATE pokervod.projects SET deleted_at = now() WHERE id = :b"), {"b": ids["b"]}
    )
    await session.commit()
    assert await q.get_catalog_tree(session, ids["b"]) is None
    assert await q.get_catalog_tree(session, ids["b"]) is None  # a cached None
    full = await q.get_catalog_tree(session, ids["b"], include_deleted=True)
    assert _titles(full) == ["b first", "b second"]


def test_the_cache_keeps_the_most_recently_used_entries() -> None:
    cache = treecache.TreeCache(max_entries=2)
    cache.put("a", 1, "A")
    cache.put("b", 1, "B")
    assert cache.get("a", 1) == "A"
    cache.put("c", 1, "C")  # drops b, the least recently used
    assert cache.get("b", 1) is treecache._MISSING
    assert cache.get("a", 2) is treecache._MISSING  # another version
    assert (cache.get("a", 1), cache.get("c", 1)) == ("A", "C")
    with pytest.raises(ValueError, match="at least 1"):
        treecache.TreeCache(max_entries=0)


async def test_each_engine_has_its_own_cache(engine: AsyncEngine, session: AsyncSession) -> None:
    assert treecache.cache_for(engine) is treecache.cache_for(session.bind)
    other = treecache.TreeCache()
    with treecache.using(other):
        assert treecache.cache_for(engine) is other


# --- concurrent writers ------------------------------------------------------------------------


async def test_concurrent_writers_to_one_project_take_turns_without_deadlock(
    session_factory: async_sessionmaker[AsyncSession], ids: Ids
) -> None:
    async def write(first: str, second: str, title: str) -> None:
        async with session_factory() as s:
            await s.execute(text("SET LOCAL deadlock_timeout = '50ms'"))
            # one statement touching both projects; the two writers list them in opposite order
            await s.execute(
                text("UPDATE pokervod.episodes SET title = :t WHERE id = ANY(:ids)"),
                {"t": title, "ids": [ids[first], ids[second]]},
            )
            await asyncio.sleep(0.05)
            await s.execute(
                text("UPDATE pokervod.episodes SET title = :t WHERE id = :e"),
                {"t": title, "e": ids[first]},
            )
            await s.commit()

    for _ in range(3):
        await asyncio.wait_for(
            asyncio.gather(
                write("a_ep1", "b_ep1", "one"),
                write("b_ep2", "a_ep2", "two"),
            ),
            timeout=20,
        )
    async with session_factory() as s:
        assert _titles(await q.get_catalog_tree(s, ids["a"])) == ["one", "two"]
        assert _titles(await q.get_catalog_tree(s, ids["b"])) == ["one", "two"]


# --- restore -----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_restore_writes_fresh_versions_so_no_cached_tree_survives_it(
    db_settings: Settings,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    ids: Ids,
    tmp_path: Path,
) -> None:
    settings = db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})
    async with session_factory() as s:
        cached = await q.get_catalog_tree(s, ids["a"])
        before = await _versions(s)
    made = backup.create_backup(settings)
    backup.restore_backup(settings, archive=made.file, safety_backup=False)
    await engine.dispose()  # the old schema's connections; the engine and its cache live on
    cache = treecache.cache_for(engine)
    async with session_factory() as s:
        after = await _versions(s)
        misses = cache.misses
        tree = await q.get_catalog_tree(s, ids["a"])
    assert set(after) == set(before)
    assert all(after[p] != before[p] for p in before), "a version came from the archive"
    assert cache.misses == misses + 1 and tree is not cached and tree == cached
