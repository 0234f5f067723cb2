"""The Python snippets of README.md and docs/*.md run against a test database, so they stay true.

A snippet is run when the line before its fence is ``<!-- snippet: run -->``. Snippets may use
top-level ``await``; they see ``DATABASE_URL`` of a private database at head and run in an empty
directory (no ``.env``). Engines a snippet leaves open are disposed afterwards.
"""

from __future__ import annotations

import ast
import inspect
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import text

from pokervod_db import embedded
from pokervod_db.database import Database
from pokervod_db.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- snippet: run -->"
_FENCE = re.compile(r"^" + re.escape(MARK) + r"\n```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _snippets() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text_ = doc.read_text()
        for n, match in enumerate(_FENCE.finditer(text_), start=1):
            found.append((f"{doc.relative_to(ROOT)}#{n}", match.group(1)))
    return found


SNIPPETS = _snippets()


def test_readme_marks_its_usage_snippet_for_running():
    assert any(name.startswith("README.md") for name, _ in SNIPPETS), "no README snippet found"


async def _run(source: str) -> dict[str, object]:
    namespace: dict[str, object] = {"__name__": "snippet"}
    code = compile(source, "<snippet>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # our own documentation, checked in
    if inspect.iscoroutine(result):
        await result
    return namespace


@pytest.mark.parametrize(("name", "source"), SNIPPETS, ids=[n for n, _ in SNIPPETS])
async def test_documented_snippet_runs(name, source, db_settings, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_settings.libpq_url())
    namespace = await _run(source)
    for value in namespace.values():
        if isinstance(value, Database):
            await value.dispose()


async def test_a_broken_snippet_fails_the_run(db_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_settings.libpq_url())
    with pytest.raises(ZeroDivisionError):
        await _run("import asyncio\nawait asyncio.sleep(0)\n1 / 0\n")


@pytest.mark.slow
async def test_database_from_settings_without_url_starts_and_joins_the_embedded_server(
    monkeypatch,
):
    # Not under pytest's basetemp (see pokervod_db.testing.pokervod_server for why).
    base = Path(tempfile.mkdtemp(prefix="pokervod-test-embedded-"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(base)
    settings = Settings(_env_file=None, EMBEDDED_DATA_DIR=base / "pgdata")
    try:
        database = Database.from_settings(settings)
        try:
            async with database.engine.connect() as conn:
                assert await conn.scalar(text("SELECT current_database()")) == "pokervod"
                data_dir = await conn.scalar(text("SHOW data_directory"))
            assert str(data_dir).endswith(f"{base.name}/pgdata")
        finally:
            await database.dispose()
    finally:
        embedded.stop(settings)
        shutil.rmtree(base, ignore_errors=True)
