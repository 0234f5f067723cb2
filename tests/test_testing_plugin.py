"""The shipped pytest plugin, tried as another block would: a consumer project with no conftest.py.

Each consumer run is a real ``pytest`` subprocess on a tiny project in tmp_path, in
pytest-asyncio's strict mode and in auto mode, on the same server as this suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pokervod_db.models import Episode, Event, Project, Season, VideoFile
from pokervod_db.testing import TEST_URL_ENV, PgServer
from pokervod_db.testing.factories import (
    EpisodeFactory,
    GoogleSheetSyncFactory,
    HandClipFactory,
    NASFileFactory,
    NASFolderFactory,
    PlayerFactory,
    ProjectFactory,
    SeasonFactory,
    TagFactory,
    VideoFileFactory,
)

CONSUMER_TESTS = """
import pytest
from sqlalchemy import func, select, text

from pokervod_db.database import Database
from pokervod_db.models import HandClip, Project
from pokervod_db.settings import Settings
from pokervod_db.testing.factories import HandClipFactory, ProjectFactory

{mark}
async def test_factories_write_through_the_session(pokervod_session):
    HandClipFactory.create()
    await pokervod_session.commit()
    assert await pokervod_session.scalar(select(func.count()).select_from(HandClip)) == 1


{mark}
async def test_each_test_gets_an_empty_database(pokervod_session):
    assert await pokervod_session.scalar(select(func.count()).select_from(Project)) == 0
    ProjectFactory.create()
    await pokervod_session.commit()


{mark}
async def test_database_is_at_head(pokervod_database):
    assert isinstance(pokervod_database, Database)
    async with pokervod_database.transaction() as session:
        version = await session.scalar(text("SELECT version_num FROM pokervod.alembic_version"))
    assert version


def test_settings_name_a_private_database(pokervod_settings):
    assert isinstance(pokervod_settings, Settings)
    assert pokervod_settings.url().database.startswith("pokervod_t_")
"""


def _run_consumer(
    tmp_path: Path, server: PgServer, *, mode: str
) -> subprocess.CompletedProcess[str]:
    mark = "@pytest.mark.asyncio" if mode == "strict" else ""
    (tmp_path / "test_consumer.py").write_text(CONSUMER_TESTS.format(mark=mark))
    (tmp_path / "pytest.ini").write_text(
        textwrap.dedent(f"""\
            [pytest]
            asyncio_mode = {mode}
            asyncio_default_fixture_loop_scope = function
            """)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DATABASE_URL"))}
    env[TEST_URL_ENV] = server.admin_url.render_as_string(hide_password=False)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_consumer_suite_without_conftest_gets_databases_and_factories(tmp_path, pg_server, mode):
    result = _run_consumer(tmp_path, pg_server, mode=mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout


@pytest.mark.slow
def test_consumer_failure_is_reported_not_hidden(tmp_path, pg_server):
    # The harness above must be able to fail: a consumer test that breaks is seen as failed.
    (tmp_path / "test_broken.py").write_text(
        "async def test_broken(pokervod_session):\n    assert False, 'consumer broke'\n"
    )
    result = _run_consumer(tmp_path, pg_server, mode="auto")
    assert result.returncode == 1
    assert "consumer broke" in result.stdout


def test_build_of_a_child_builds_every_parent_it_requires():
    video = VideoFileFactory.build()
    assert isinstance(video, VideoFile)
    assert isinstance(video.episode, Episode)
    assert isinstance(video.episode.event, Event)
    assert isinstance(video.episode.event.season, Season)
    assert isinstance(video.episode.event.season.project, Project)
    clip = HandClipFactory.build()
    assert clip.video_file is not None and clip.episode is clip.video_file.episode
    assert NASFileFactory.build().folder is not None


def test_every_model_has_a_factory_that_builds_without_a_session():
    for factory in (
        ProjectFactory,
        SeasonFactory,
        EpisodeFactory,
        TagFactory,
        PlayerFactory,
        GoogleSheetSyncFactory,
        NASFolderFactory,
    ):
        obj = factory.build()
        assert obj.id is None  # built, not flushed: nothing touched a database


async def test_create_without_a_bound_session_says_which_fixture_to_use():
    from pokervod_db.testing import factories

    factories.bind(None)
    with pytest.raises(RuntimeError, match="pokervod_session"):
        ProjectFactory.create()


async def test_pokervod_session_fixture_binds_factories_to_a_private_database(pokervod_session):
    VideoFileFactory.create()
    await pokervod_session.commit()
    assert await pokervod_session.scalar(select(func.count()).select_from(Project)) == 1


def test_database_name_fixture_names_the_database_of_the_settings(
    pokervod_settings, pokervod_database_name
):
    assert pokervod_settings.url().database == pokervod_database_name
