"""The status page in a real headless Chromium: every section is there, and a screenshot is saved.

Debian's ``chromium`` is installed by ``.ci/run``; where it cannot be installed the test is
skipped with the reason. The screenshots land in the test's temporary directory (printed).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pokervod_db import queries
from pokervod_db.agent import DatabaseAgent
from pokervod_db.database import async_session_factory, create_engine, transaction
from pokervod_db.sample import load_sample
from pokervod_db.settings import Settings
from pokervod_db.web import create_app
from pokervod_db.web.page import render_page
from pokervod_db.web.service import Snapshot
from tests.web_support import ThreadServer

SECTIONS = ("health", "tables", "statements", "indexes", "vacuum", "backups", "events")


class _Dom(HTMLParser):
    """Sections by id with their text, and the SVG bars, from Chromium's serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.bars = 0
        self.external: list[str] = []
        self._current: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section" and values.get("id"):
            self._current = values["id"]
            self.sections[self._current or ""] = ""
        if tag == "rect" and values.get("class") == "heap":
            self.bars += 1
        for key in ("src", "href"):
            if values.get(key):
                self.external.append(str(values[key]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._current = None

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self.sections[self._current] += data


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium package)")
    return found


def _browse(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


async def _prepare(settings: Settings) -> None:
    """Sample data, one verified backup and its events: every section has something to show."""
    engine = create_engine(settings)
    try:
        async with transaction(async_session_factory(engine)) as session:
            await load_sample(session)
        with contextlib.suppress(DBAPIError):  # statements to show where the server preloads it
            async with engine.begin() as conn:
                await conn.execute(
                    text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public")
                )
        async with async_session_factory(engine)() as session:
            await queries.list_video_files(session, limit=10)
            await queries.search_hand_clips(session, "river")
    finally:
        await engine.dispose()
    async with DatabaseAgent(settings) as agent:
        result = await agent.backup_database(tag="page-test", upload=False)
        await agent.verify_backup(result.file)


@pytest.mark.slow
async def test_status_page_shows_every_section_in_headless_chromium(
    db_settings: Settings, tmp_path: Path
) -> None:
    chromium = _chromium()
    settings = db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})
    await _prepare(settings)
    app = create_app(settings, collect_interval_s=1.0)
    with ThreadServer(app) as server:
        assert server.get("/").status_code == 200  # waits for the first collection
        dom = _browse(chromium, tmp_path / "profile", "--dump-dom", server.url + "/").stdout
        shots = {}
        for name, size in (("laptop", "1366,2600"), ("phone", "390,3000")):
            shots[name] = tmp_path / f"status-{name}.png"
            _browse(
                chromium,
                tmp_path / "profile",
                f"--window-size={size}",
                f"--screenshot={shots[name]}",
                server.url + "/",
            )
    print(f"status page screenshots: {shots['laptop']} {shots['phone']}")  # noqa: T201 - the path is part of the result
    parsed = _Dom()
    parsed.feed(dom)
    assert set(SECTIONS) <= set(parsed.sections), parsed.sections.keys()
    assert "HEALTHY" in dom
    text = parsed.sections
    assert "reachable" in text["health"] and "migrations" in text["health"]
    assert parsed.bars >= 10  # one bar per table of the schema
    assert "video_files" in text["tables"]
    assert "mean ms" in text["statements"] or "pg_stat_statements" in text["statements"]
    assert "duplicate" in text["indexes"]
    assert "dead" in text["vacuum"] and "hand_clips" in text["vacuum"]
    assert "VERIFIED" in text["backups"] and "last backup" in text["backups"]
    assert "db.backup.completed" in text["events"]
    assert parsed.external == []  # no external assets of any kind
    for shot in shots.values():
        assert shot.stat().st_size > 10_000


def test_page_escapes_hostile_values() -> None:
    from pokervod_db.events import Event

    snap = Snapshot(newest_events=[Event(type="<script>alert(1)</script>", id=1)])
    html = render_page(snap, database="<img src=x onerror=alert(1)>")
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html
