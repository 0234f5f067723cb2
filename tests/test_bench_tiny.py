"""The benchmark at the tiny scale, inside the test suite, so that it cannot rot.

No timing is asserted (the machine is shared): only that every part runs and reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from benchmarks import search_writes
from benchmarks.ops import conninfo
from benchmarks.run import run_benchmark, save
from benchmarks.scales import SCALES

from pokervod_db.settings import Settings

pytestmark = pytest.mark.slow


async def test_tiny_benchmark_runs_end_to_end_and_saves_its_report(
    empty_db_settings: Settings, tmp_path: Path
) -> None:
    lines: list[str] = []
    results = await run_benchmark(empty_db_settings, SCALES["tiny"], runs=3, log=lines.append)

    assert results["generation"]["reused"] is False
    assert set(results["reads"]) >= {
        "project_by_code",
        "catalog_tree",
        "hand_clips_of_tag",
        "count_hand_clips_of_tag",
        "list_video_files_keyset_deep",
        "search_notes_common",
        "search_titles_typical",
    }
    for name, stats in results["reads"].items():
        assert stats["runs"] >= 3, name
        assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"], name
    fresh = results["ingest"]["fresh_nas_files"]
    assert fresh["rows"] == SCALES["tiny"].fresh_rows and fresh["ratio"] > 0
    reupsert = results["ingest"]["reupsert_nas_files"]
    assert reupsert["updated"] == reupsert["changed"] > 0
    assert results["migration"]["median_s"] > 0
    assert results["backup_restore"]["bare"]["archive_bytes"] > 0
    # Physical sections run on a server that allows replication; they report why not otherwise.
    assert "backup_s" in results["physical"] or "skipped" in results["physical"]
    assert "samples" in results["replica_lag"] or "skipped" in results["replica_lag"]
    assert results["database_size_bytes"] > 0
    paths = results["request_path"]["reads"]
    assert set(paths) >= {"project_by_code", "catalog_tree", "hand_clips_of_tag"}
    for name, x in paths.items():
        assert x["statements"] >= 1 and x["ratio"] > 0, name
        assert x["form"] == ("session" if name == "catalog_tree_orm" else "reader"), name
        assert x["session_p50_ms"] > 0 and x["session_ratio"] > 0, name
    assert paths["project_by_code"]["transaction"] is False  # one statement: no BEGIN/COMMIT
    assert paths["hand_clips_of_player"]["transaction"] is True  # custom plans + page
    concurrent = results["throughput"]
    assert concurrent["clients"] == 32 and concurrent["ratio"] > 0
    assert concurrent["api_reads_per_s"] > 0 and concurrent["raw_reads_per_s"] > 0
    for writers in ("1", "8", "32"):
        run = results["events"]["runs"][writers]
        assert run["delivered"] == run["events"] == int(writers) * 5, writers
        assert run["exactly_once"] and run["in_order"], writers
        assert 0 <= run["latency_p50_ms"] <= run["latency_p95_ms"], writers

    json_path, md_path = save(results, tmp_path)
    assert json.loads(json_path.read_text())["scale"] == "tiny"
    table = md_path.read_text()
    assert "| catalog_tree |" in table and "upsert_nas_files, fresh rows" in table
    assert "bare asyncpg reads/s" in table
    assert "## Events" in table and "## Soak" in table
    soaked = results["soak"]
    assert soaked["errors"] == 0 and soaked["operations"] > 0, soaked
    assert soaked["connections_left_after_dispose"] == 0
    assert 0 < soaked["connections_peak"] <= soaked["pool_limit"]

    # A second run reuses the generated archive.
    again = await run_benchmark(empty_db_settings, SCALES["tiny"], runs=1, log=lines.append)
    assert again["generation"]["reused"] is True


async def test_search_write_cost_leaves_the_archive_and_its_indexes_as_they_were(
    empty_db_settings: Settings,
) -> None:
    await run_benchmark(
        empty_db_settings, SCALES["tiny"], runs=1, log=lambda _: None, sections=frozenset()
    )

    async def state() -> tuple[int, int, list[str]]:
        conn = await asyncpg.connect(conninfo(empty_db_settings))
        try:
            clips = await conn.fetchval("SELECT count(*) FROM pokervod.hand_clips")
            videos = await conn.fetchval("SELECT count(*) FROM pokervod.video_files")
            names = [
                r[0]
                for r in await conn.fetch(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = 'pokervod'"
                    " AND indexname = ANY($1::text[]) ORDER BY 1",
                    [i for pair in search_writes.INDEXES.values() for i in pair],
                )
            ]
            return clips, videos, names
        finally:
            await conn.close()

    before = await state()
    assert len(before[2]) == 4
    results = await search_writes.measure(empty_db_settings, rows=30, repeat=1)

    assert await state() == before  # every write rolled back, every index still there
    for name, figures in results.items():
        if name.startswith(("insert", "re-upsert")):
            assert figures["with_search_indexes_s"] > 0 and figures["without_s"] > 0, name
    assert set(results["index_bytes"]) == set(before[2])
