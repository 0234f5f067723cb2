"""A restore reports where its time went: every step of the load, timed and grouped."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from pokervod_db import backup
from pokervod_db.backup.load import _rebuild_label
from pokervod_db.backup.progress import PhaseTimer
from pokervod_db.settings import Settings
from tests.backup.support import connect, fill


def test_phase_timer_groups_steps_by_their_first_word() -> None:
    timer = PhaseTimer("restore")
    timer.lap("copy hand_clips")
    time.sleep(0.02)
    timer.lap("copy tags")
    timer.lap("index ix_tags_name")
    assert [name for name, _ in timer.steps] == [
        "copy hand_clips",
        "copy tags",
        "index ix_tags_name",
    ]
    groups = timer.groups()
    assert list(groups) == ["copy", "index"]
    assert groups["copy"] >= 0.02
    assert timer.total("copy ") == pytest.approx(groups["copy"], abs=0.001)
    assert timer.summary().startswith("restore took ")
    assert "copy " in timer.summary() and "index " in timer.summary()


@pytest.mark.parametrize(
    ("statement", "label"),
    [
        ("CREATE INDEX ix_a ON pokervod.a USING btree (b)", "index ix_a"),
        ("CREATE UNIQUE INDEX ix_b ON pokervod.a USING btree (c)", "index ix_b"),
        ("ALTER TABLE pokervod.a ADD CONSTRAINT pk_a PRIMARY KEY (id)", "key pk_a"),
        (
            "ALTER TABLE pokervod.a ADD CONSTRAINT fk_a_b FOREIGN KEY (b) REFERENCES pokervod.b(id)",
            "foreign-key fk_a_b",
        ),
        ("SELECT 1", "rebuild"),
    ],
)
def test_rebuild_statements_are_labelled_by_kind_and_name(statement: str, label: str) -> None:
    assert _rebuild_label(statement) == label


@pytest.fixture
async def filled(db_settings: Settings, session, tmp_path: Path) -> Settings:
    await fill(session)
    return db_settings.model_copy(update={"backup_dir": tmp_path / "backups"})


@pytest.mark.slow
def test_restore_result_says_where_the_time_went(
    filled: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    made = backup.create_backup(filled)
    with caplog.at_level(logging.INFO, logger="pokervod_db.backup"):
        result = backup.restore_backup(filled, archive=made.file, safety_backup=False)
    phases = result.phases
    assert {
        "schema",
        "copy",
        "index",
        "key",
        "foreign-key",
        "check",
        "statistics",
        "commit",
    } <= set(phases)
    assert all(seconds >= 0 for seconds in phases.values())
    assert sum(phases.values()) <= result.duration_s
    assert result.to_dict()["phases"] == phases
    assert any(r.getMessage().startswith("restore took ") for r in caplog.records)


@pytest.mark.slow
def test_restore_leaves_the_search_columns_analyzed(filled: Settings) -> None:
    """Search weighs words by the column statistics; a restore must not leave them missing."""
    made = backup.create_backup(filled)
    backup.restore_backup(filled, archive=made.file, safety_backup=False)
    with connect(filled) as conn:
        analyzed = conn.execute(
            "SELECT tablename, most_common_elems IS NOT NULL FROM pg_stats"
            " WHERE schemaname = 'pokervod' AND attname IN ('notes_tsv', 'title_tsv')"
            " ORDER BY tablename"
        ).fetchall()
    assert analyzed == [("hand_clips", True), ("video_files", True)]
