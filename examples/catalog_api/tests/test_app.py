"""The example service's tests: only the pokervod_db pytest plugin and an ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession

from examples.catalog_api.app import create_app
from pokervod_db.database import Database
from pokervod_db.models import Episode, Player, Tag
from pokervod_db.testing.factories import (
    EpisodeFactory,
    HandClipFactory,
    PlayerFactory,
    TagFactory,
    VideoFileFactory,
)


@pytest_asyncio.fixture
async def client(pokervod_database: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(pokervod_database))
    async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as c:
        yield c


async def _archive(session: AsyncSession) -> tuple[Episode, Player, Tag]:
    """One episode with two video files; a player and a tag on three clips."""
    episode = EpisodeFactory.create()
    VideoFileFactory.create(episode=episode, file_name="b.mp4")
    video = VideoFileFactory.create(episode=episode, file_name="a.mp4")
    player, tag = PlayerFactory.create(), TagFactory.create()
    start = datetime(2024, 7, 1, tzinfo=UTC)  # one transaction: now() would tie every clip
    for n in range(3):
        clip = HandClipFactory.create(
            video_file=video, title=f"Hand {n}", created_at=start + timedelta(minutes=n)
        )
        clip.players.append(player)
        clip.tags.append(tag)
    HandClipFactory.create(video_file=video, notes="a quiet fold preflop")
    await session.commit()
    return episode, player, tag


async def test_catalog_tree_of_a_project_by_code(client, pokervod_session):
    episode, _, _ = await _archive(pokervod_session)
    project = episode.event.season.project
    response = await client.get(f"/projects/{project.code}/tree")
    assert response.status_code == 200
    tree = response.json()
    assert tree["code"] == project.code
    episodes = tree["seasons"][0]["events"][0]["episodes"]
    assert [e["id"] for e in episodes] == [str(episode.id)]


async def test_unknown_project_is_404_with_the_code_named(client):
    response = await client.get("/projects/NOPE/tree")
    assert response.status_code == 404
    assert "NOPE" in response.json()["detail"]


async def test_video_files_of_an_episode_by_file_name(client, pokervod_session):
    episode, _, _ = await _archive(pokervod_session)
    response = await client.get(f"/episodes/{episode.id}/video-files")
    assert response.status_code == 200
    assert [f["file_name"] for f in response.json()] == ["a.mp4", "b.mp4"]


@pytest.mark.parametrize("owner", ["players", "tags"])
async def test_clips_of_a_player_or_tag_page_with_cursors(client, pokervod_session, owner):
    _, player, tag = await _archive(pokervod_session)
    owner_id = player.id if owner == "players" else tag.id
    first = (await client.get(f"/{owner}/{owner_id}/clips", params={"limit": 2})).json()
    assert [c["title"] for c in first["items"]] == ["Hand 2", "Hand 1"]  # newest first
    assert first["next_cursor"]
    params = {"limit": 2, "after": first["next_cursor"]}
    second = (await client.get(f"/{owner}/{owner_id}/clips", params=params)).json()
    assert [c["title"] for c in second["items"]] == ["Hand 0"]
    assert second["next_cursor"] is None


async def test_search_finds_titles_and_notes(client, pokervod_session):
    await _archive(pokervod_session)
    clips = (await client.get("/search/clips", params={"q": "fold"})).json()
    assert [c["notes"] for c in clips] == ["a quiet fold preflop"]
    files = (await client.get("/search/video-files", params={"q": "main event"})).json()
    assert len(files) == 2


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/players/00000000-0000-0000-0000-000000000000/clips?after=not-a-cursor", 400),
        ("/players/00000000-0000-0000-0000-000000000000/clips?limit=0", 422),
        ("/players/00000000-0000-0000-0000-000000000000/clips?limit=100000", 422),
        ("/players/not-a-uuid/clips", 422),
        ("/search/clips?q=", 422),
    ],
)
async def test_hostile_parameters_are_refused_with_a_client_error(client, path, status):
    response = await client.get(path)
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
