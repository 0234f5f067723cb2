"""The schema after ``upgrade head`` against the contract in schema.md, and the models' Python API.

The expectations below are copied from schema.md by hand (not derived from the models), so a
model or migration that drifts from the contract makes these tests fail.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from pokervod_db import models
from pokervod_db.settings import Settings
from tests.conftest import PgServer

# --- the contract, transcribed from schema.md ------------------------------------------------
# One table per block: "name type [not null] [default X] [-> table rule]". Every entity table
# additionally has id uuid, created_at, updated_at and deleted_at (schema.md "Everywhere").
CONTRACT = """
projects
  code varchar(20) not null
  name varchar(200) not null
  description text
  nas_base_path varchar(500)
  filename_pattern varchar(500)
  is_active bool not null default true
seasons
  project_id uuid not null -> projects cascade
  year int not null
  name varchar(200) not null
  location varchar(200)
  sub_category varchar(50)
  status varchar(20) not null default 'active'
events
  season_id uuid not null -> seasons cascade
  event_number int
  name varchar(500) not null
  name_short varchar(100)
  event_type varchar(50)
  game_type varchar(50)
  buy_in numeric(10,2)
  gtd_amount numeric(15,2)
  venue varchar(200)
  start_date date
  status varchar(20) not null default 'upcoming'
episodes
  event_id uuid not null -> events cascade
  episode_number int
  day_number int
  part_number int
  title varchar(500)
  episode_type varchar(50)
  table_type varchar(50)
  duration_seconds int
video_files
  episode_id uuid -> episodes set_null
  file_path varchar(1000) not null
  file_name varchar(500) not null
  file_size_bytes bigint
  file_format varchar(20)
  file_mtime timestamptz
  resolution varchar(20)
  video_codec varchar(50)
  audio_codec varchar(50)
  bitrate_kbps int
  duration_seconds int
  version_type varchar(20)
  is_original bool not null default false
  display_title varchar(500)
  content_type varchar(20)
  catalog_title varchar(300)
  is_catalog_item bool not null default false
  is_hidden bool not null default false
  hidden_reason varchar(50)
  scan_status varchar(20) not null default 'pending'
hand_clips
  episode_id uuid -> episodes set_null
  video_file_id uuid -> video_files set_null
  sheet_source varchar(50)
  sheet_row_number int
  nas_folder_link varchar(1000)
  sheet_file_name varchar(500)
  title varchar(500)
  timecode varchar(20)
  timecode_end varchar(20)
  duration_seconds int
  notes text
  hand_grade varchar(10)
  pot_size bigint
  winner_hand varchar(50)
  hands_involved varchar(100)
tags
  category varchar(50) not null
  name varchar(100) not null
  name_display varchar(100)
  description text
  sort_order int not null default 0
  is_active bool not null default true
players
  name varchar(200) not null
  name_display varchar(200)
  nationality varchar(100)
  hendon_mob_id varchar(50)
  total_live_earnings numeric(15,2)
  wsop_bracelets int not null default 0
  is_active bool not null default true
google_sheet_sync
  sheet_id varchar(100) not null
  entity_type varchar(50) not null
  last_row_synced int not null default 0
  last_synced_at timestamptz
  sync_status varchar(20) not null default 'idle'
  error_message text
nas_folders
  folder_path varchar(1000) not null
  folder_name varchar(500) not null
  parent_path varchar(1000)
  depth int not null default 0
  file_count int not null default 0
  folder_count int not null default 0
  total_size_bytes bigint not null default 0
  is_empty bool not null default true
  is_hidden_folder bool not null default false
nas_files
  file_path varchar(1000) not null
  file_name varchar(500) not null
  file_size_bytes bigint not null default 0
  file_extension varchar(20)
  file_mtime timestamptz
  file_category varchar(20) not null default 'other'
  is_hidden_file bool not null default false
  is_excluded bool not null default false
  exclude_reason varchar(100)
  video_file_id uuid -> video_files set_null
  folder_id uuid -> nas_folders set_null
hand_clip_tags link
  hand_clip_id uuid not null -> hand_clips cascade
  tag_id uuid not null -> tags cascade
hand_clip_players link
  hand_clip_id uuid not null -> hand_clips cascade
  player_id uuid not null -> players cascade
"""

ENTITY_COMMON = [
    "id uuid not null default gen_random_uuid()",
    "created_at timestamptz not null default now()",
    "updated_at timestamptz not null default now()",
    "deleted_at timestamptz",
]

# Columns the database may have beyond the contract: the stored generated tsvector columns
# that the two full-text indexes index (schema.md allows them under the same index names).
ALLOWED_EXTRA_COLUMNS = {
    ("video_files", "title_tsv"),
    ("hand_clips", "notes_tsv"),
    # the clip's timestamps on its tag links, kept by triggers (005_tag_link_created_at)
    ("hand_clip_tags", "clip_created_at"),
    ("hand_clip_tags", "clip_deleted_at"),
}

# schema.md "Indexes" (name, table, columns, unique); the GIN ones are checked separately.
CONTRACT_INDEXES = [
    ("ix_projects_code", "projects", ["code"], True),
    ("ix_seasons_project_year", "seasons", ["project_id", "year"], False),
    ("ix_events_season_number", "events", ["season_id", "event_number"], False),
    ("ix_episodes_event_id", "episodes", ["event_id"], False),
    ("ix_video_files_file_path", "video_files", ["file_path"], True),
    ("ix_video_files_episode_id", "video_files", ["episode_id"], False),
    ("ix_hand_clips_video_file_id", "hand_clips", ["video_file_id"], False),
    ("ix_hand_clips_sheet_source_row", "hand_clips", ["sheet_source", "sheet_row_number"], True),
    ("ix_tags_category_name", "tags", ["category", "name"], True),
    ("ix_nas_files_file_path", "nas_files", ["file_path"], True),
    ("ix_nas_files_folder_id", "nas_files", ["folder_id"], False),
]
CONTRACT_GIN = [
    ("ix_video_files_title_gin", "video_files", "display_title"),
    ("ix_hand_clips_notes_gin", "hand_clips", "notes"),
]
# "Plus the indexes the rules above require": unique natural keys (names not fixed by schema.md).
CONTRACT_UNIQUE_KEYS = [
    ("projects", ["code"]),
    ("players", ["name"]),
    ("nas_folders", ["folder_path"]),
    ("nas_files", ["file_path"]),
    ("video_files", ["file_path"]),
    ("google_sheet_sync", ["sheet_id", "entity_type"]),
]

_TYPES = {
    "uuid": "uuid",
    "text": "text",
    "bool": "boolean",
    "int": "integer",
    "bigint": "bigint",
    "date": "date",
    "timestamptz": "timestamp with time zone",
}


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    not_null: bool
    default: str | None
    references: tuple[str, str] | None  # (table, "cascade" | "set_null")


def _pg_type(spec: str) -> str:
    if m := re.fullmatch(r"varchar\((\d+)\)", spec):
        return f"character varying({m[1]})"
    if spec.startswith("numeric("):
        return spec
    return _TYPES[spec]


def _parse_column(line: str) -> ColumnSpec:
    m = re.fullmatch(
        r"(?P<name>\w+) (?P<type>\S+)(?P<nn> not null)?(?: default (?P<default>\S+))?"
        r"(?: -> (?P<ref>\w+) (?P<rule>cascade|set_null))?",
        line,
    )
    assert m, f"unparseable contract line: {line!r}"
    return ColumnSpec(
        name=m["name"],
        type=_pg_type(m["type"]),
        not_null=bool(m["nn"]),
        default=m["default"],
        references=(m["ref"], m["rule"]) if m["ref"] else None,
    )


def _parse_contract() -> dict[str, tuple[bool, list[ColumnSpec]]]:
    tables: dict[str, tuple[bool, list[ColumnSpec]]] = {}
    current: list[ColumnSpec] = []
    for raw in CONTRACT.strip().splitlines():
        if not raw.startswith("  "):
            name, *flags = raw.split()
            is_link = flags == ["link"]
            current = [] if is_link else [_parse_column(c) for c in ENTITY_COMMON]
            tables[name] = (is_link, current)
        else:
            current.append(_parse_column(raw.strip()))
    return tables


TABLES = _parse_contract()
ENTITY_TABLES = sorted(name for name, (link, _) in TABLES.items() if not link)


def _normalise_default(expr: str | None) -> str | None:
    if expr is None:
        return None
    return re.sub(r"::[a-z ]+$", "", expr)  # 'active'::character varying -> 'active'


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def head_conn(pg_server: PgServer, template_db: str) -> Iterator[psycopg.Connection]:
    """A read-only look at a database at head (one copy for the whole module)."""
    name = f"pokervod_models_{uuid.uuid4().hex[:12]}"  # unique: the server may be shared
    pg_server.create_database(name, template=template_db)
    settings = pg_server.settings_for(name)
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        yield conn
    pg_server.drop_database(name)


def _rows(conn: psycopg.Connection, query: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    return conn.execute(query, params).fetchall()


# --- tables and columns -----------------------------------------------------------------------


def test_schema_holds_exactly_the_contract_tables_plus_outbox_counters_and_version_table(
    head_conn,
):
    names = {
        r[0]
        for r in _rows(head_conn, "SELECT tablename FROM pg_tables WHERE schemaname = 'pokervod'")
    }
    assert names == set(TABLES) | {
        "agent_events",
        "alembic_version",
        "catalog_versions",
        "tag_clip_counts",
    }


@pytest.mark.parametrize("table", sorted(TABLES))
def test_table_columns_match_contract_types_nullability_and_defaults(head_conn, table):
    _, columns = TABLES[table]
    actual = {
        name: (typ, not_null, _normalise_default(default))
        for name, typ, not_null, default in _rows(
            head_conn,
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END
            FROM pg_attribute a
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = ('pokervod.' || %s)::regclass AND a.attnum > 0
              AND NOT a.attisdropped
            """,
            table,
        )
    }
    expected = {c.name: (c.type, c.not_null, c.default) for c in columns}
    for name, spec in expected.items():
        assert name in actual, f"{table}.{name} is missing"
        assert actual[name] == spec, f"{table}.{name}: {actual[name]} != contract {spec}"
    extra = {(table, n) for n in actual} - {(table, n) for n in expected}
    assert extra <= ALLOWED_EXTRA_COLUMNS, f"columns not in the contract: {extra}"


@pytest.mark.parametrize("table", ENTITY_TABLES)
def test_entity_table_has_single_uuid_primary_key_named_by_convention(head_conn, table):
    rows = _rows(
        head_conn,
        """
        SELECT c.conname, array_agg(a.attname ORDER BY a.attnum)
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = ('pokervod.' || %s)::regclass AND c.contype = 'p'
        GROUP BY c.conname
        """,
        table,
    )
    assert rows == [(f"pk_{table}", ["id"])]


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("hand_clip_tags", ["hand_clip_id", "tag_id"]),
        ("hand_clip_players", ["hand_clip_id", "player_id"]),
    ],
)
def test_link_table_has_composite_primary_key_and_index_on_second_column(head_conn, table, columns):
    pk = _rows(
        head_conn,
        """
        SELECT c.conname, array(SELECT attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                                JOIN pg_attribute ON attrelid = c.conrelid AND attnum = k.n
                                ORDER BY k.o)
        FROM pg_constraint c WHERE c.conrelid = ('pokervod.' || %s)::regclass AND c.contype = 'p'
        """,
        table,
    )
    assert pk == [(f"pk_{table}", columns)]
    leading = {r[0] for r in _index_rows(head_conn) if r[1] == table}
    assert columns[1] in {_index_columns(head_conn, name)[0] for name in leading}


def _fk_rows(conn: psycopg.Connection) -> list[tuple[str, str, str, str, str]]:
    """(constraint, table, column, referenced table, on delete) of every FK in the schema."""
    return [
        tuple(r)
        for r in _rows(
            conn,
            """
            SELECT c.conname, t.relname, a.attname, rt.relname, c.confdeltype::text
            FROM pg_constraint c
            JOIN pg_class t ON t.oid = c.conrelid
            JOIN pg_namespace n ON n.oid = t.relnamespace
            JOIN pg_class rt ON rt.oid = c.confrelid
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE n.nspname = 'pokervod' AND c.contype = 'f'
            """,
        )
    ]


def test_foreign_keys_match_contract_with_on_delete_rules_and_conventional_names(head_conn):
    rule = {"cascade": "c", "set_null": "n"}
    expected = {
        (
            f"fk_{table}_{c.name}_{c.references[0]}",
            table,
            c.name,
            c.references[0],
            rule[c.references[1]],
        )
        for table, (_, cols) in TABLES.items()
        for c in cols
        if c.references
    }
    # the per-tag counters (005_tag_link_created_at) go with their tag
    expected.add(("fk_tag_clip_counts_tag_id_tags", "tag_clip_counts", "tag_id", "tags", "c"))
    # the tree versions (007_catalog_versions) go with their project
    expected.add(
        (
            "fk_catalog_versions_project_id_projects",
            "catalog_versions",
            "project_id",
            "projects",
            "c",
        )
    )
    assert set(_fk_rows(head_conn)) == expected


def _index_rows(conn: psycopg.Connection) -> list[tuple]:  # type: ignore[type-arg]
    return _rows(
        conn,
        """
        SELECT i.relname, t.relname, ix.indisunique, am.amname, ix.indisprimary
        FROM pg_index ix
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_am am ON am.oid = i.relam
        WHERE n.nspname = 'pokervod'
        """,
    )


def _index_columns(conn: psycopg.Connection, index: str) -> list[str]:
    rows = _rows(
        conn,
        """
        SELECT coalesce(a.attname, '<expr>')
        FROM pg_index ix
        CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
        LEFT JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
        WHERE ix.indexrelid = ('pokervod.' || %s)::regclass
        ORDER BY k.ord
        """,
        index,
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize(("name", "table", "columns", "unique"), CONTRACT_INDEXES)
def test_contract_index_exists_with_its_columns_and_uniqueness(
    head_conn, name, table, columns, unique
):
    found = {r[0]: r for r in _index_rows(head_conn)}
    assert name in found, f"index {name} is missing"
    _, on_table, is_unique, method, _ = found[name]
    assert (on_table, is_unique, method) == (table, unique, "btree")
    assert _index_columns(head_conn, name) == columns


@pytest.mark.parametrize(("name", "table", "source"), CONTRACT_GIN)
def test_full_text_index_is_gin_over_english_tsvector_of_its_column(head_conn, name, table, source):
    found = {r[0]: r for r in _index_rows(head_conn)}
    assert name in found, f"index {name} is missing"
    assert found[name][1:4] == (table, False, "gin")
    definition = _rows(head_conn, "SELECT pg_get_indexdef(('pokervod.' || %s)::regclass)", name)[0][
        0
    ]
    (column,) = _index_columns(head_conn, name)
    if column == "<expr>":
        expression = definition
    else:
        # A stored generated tsvector column computed from the same expression (allowed).
        expression = _rows(
            head_conn,
            """
            SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a
            JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = ('pokervod.' || %s)::regclass AND a.attname = %s
              AND a.attgenerated = 's'
            """,
            table,
            column,
        )[0][0]
    assert re.search(rf"to_tsvector\('english'::regconfig, \(?{source}\b", expression), expression


@pytest.mark.parametrize(("table", "columns"), CONTRACT_UNIQUE_KEYS)
def test_natural_key_has_a_unique_index(head_conn, table, columns):
    uniques = [r[0] for r in _index_rows(head_conn) if r[1] == table and r[2] and not r[4]]
    assert columns in [_index_columns(head_conn, name) for name in uniques]


def test_every_foreign_key_column_leads_an_index(head_conn):
    leading = {(r[1], _index_columns(head_conn, r[0])[0]) for r in _index_rows(head_conn)}
    missing = [(t, c) for _, t, c, _, _ in _fk_rows(head_conn) if (t, c) not in leading]
    assert missing == []


def test_constraint_and_index_names_follow_the_naming_convention(head_conn):
    prefix = {"p": "pk_", "f": "fk_", "c": "ck_", "u": "uq_"}
    rows = _rows(
        head_conn,
        """
        SELECT c.conname, c.contype::text, t.relname FROM pg_constraint c
        JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'pokervod' AND t.relname <> 'alembic_version'
          AND c.contype <> 'n'  -- PostgreSQL 18 catalogs NOT NULL with names of its own
        """,
    )
    bad = [
        r for r in rows if not r[0].startswith(prefix[r[1]] + r[2] + "_") and r[0] != "pk_" + r[2]
    ]
    assert bad == []
    assert all(
        r[0].startswith("ix_") or r[4] for r in _index_rows(head_conn) if r[1] != "alembic_version"
    )


@pytest.mark.parametrize("table", ENTITY_TABLES)
def test_entity_table_has_before_update_trigger_for_updated_at(head_conn, table):
    rows = _rows(
        head_conn,
        """
        SELECT p.proname, t.tgtype & 1 = 1 AS for_each_row, t.tgtype & 2 = 2 AS before,
               t.tgtype & 16 = 16 AS on_update, t.tgenabled::text
        FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE t.tgrelid = ('pokervod.' || %s)::regclass AND NOT t.tgisinternal
          AND p.proname = 'set_updated_at'
        """,
        table,
    )
    assert rows == [("set_updated_at", True, True, True, "O")]


# --- check constraints: every range and value list of schema.md is enforced ------------------

# (table, column, values the check must reject, values it must accept)
CHECKS = [
    ("seasons", "year", [1800, 2500], [1970, 2024, 2100]),
    ("events", "buy_in", [-1], [0, 10000]),
    ("events", "gtd_amount", [-1], [0, 1000000]),
    ("episodes", "duration_seconds", [-1], [0, 3600]),
    (
        "episodes",
        "episode_type",
        ["bogus", "Full"],
        ["full", "highlight", "recap", "interview", "subclip"],
    ),
    (
        "episodes",
        "table_type",
        ["day4"],
        ["preliminary", "day1", "day2", "day3", "final_table", "heads_up"],
    ),
    ("video_files", "file_size_bytes", [-1], [0]),
    ("video_files", "duration_seconds", [-1], [0]),
    (
        "video_files",
        "version_type",
        ["raw"],
        [
            "clean",
            "mastered",
            "stream",
            "subclip",
            "final_edit",
            "nobug",
            "pgm",
            "hires",
            "generic",
        ],
    ),
    ("hand_clips", "sheet_row_number", [0, -5], [1]),
    ("hand_clips", "duration_seconds", [-1], [0]),
    ("hand_clips", "hand_grade", ["★★★★", "A"], ["★", "★★", "★★★"]),
    ("hand_clips", "pot_size", [-1], [0]),
    ("tags", "category", ["misc"], ["poker_play", "emotion", "epic_hand", "runout", "adjective"]),
    ("players", "wsop_bracelets", [-1], [0, 17]),
    ("google_sheet_sync", "last_row_synced", [-1], [0]),
    ("google_sheet_sync", "sync_status", ["done"], ["idle", "syncing", "completed", "failed"]),
    ("nas_files", "file_size_bytes", [-1], [0]),
    ("nas_files", "file_category", ["movie"], ["video", "metadata", "system", "archive", "other"]),
]


def _insert(conn: psycopg.Connection, table: str, column: str, value: object) -> None:
    """Insert one otherwise-valid row into ``table`` with ``column = value`` (plain SQL)."""
    project = conn.execute(
        "INSERT INTO pokervod.projects (code, name) VALUES ('CK' || gen_random_uuid()::text::varchar(8), 'p') "
        "RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    season = conn.execute(
        "INSERT INTO pokervod.seasons (project_id, year, name) VALUES (%s, 2024, 's') RETURNING id",
        (project,),
    ).fetchone()[0]  # type: ignore[index]
    event = conn.execute(
        "INSERT INTO pokervod.events (season_id, name) VALUES (%s, 'e') RETURNING id", (season,)
    ).fetchone()[0]  # type: ignore[index]
    base: dict[str, object] = {
        "seasons": {"project_id": project, "year": 2024, "name": "s"},
        "events": {"season_id": season, "name": "e"},
        "episodes": {"event_id": event},
        "video_files": {"file_path": f"/v/{value!s}/{column}", "file_name": "v.mp4"},
        "hand_clips": {},
        "tags": {"category": "emotion", "name": f"t-{column}-{value!s}"},
        "players": {"name": f"p-{column}-{value!s}"},
        "google_sheet_sync": {"sheet_id": "s", "entity_type": f"{column}-{value!s}"},
        "nas_files": {"file_path": f"/n/{value!s}/{column}", "file_name": "n"},
    }[table]
    row = {**base, column: value}
    cols = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO pokervod.{table} ({cols}) VALUES ({marks})", tuple(row.values()))


@pytest.mark.parametrize(("table", "column", "rejected", "accepted"), CHECKS)
def test_check_constraint_enforces_contract_range_or_value_list(
    head_conn, table, column, rejected, accepted
):
    for value in rejected:
        with (
            pytest.raises(psycopg.errors.CheckViolation) as info,
            head_conn.transaction(force_rollback=True),
        ):
            _insert(head_conn, table, column, value)
        assert str(info.value.diag.constraint_name).startswith(f"ck_{table}_")
    nullable = not next(c for c in TABLES[table][1] if c.name == column).not_null
    for value in [*accepted, None] if nullable else accepted:
        with head_conn.transaction(force_rollback=True):
            _insert(head_conn, table, column, value)


# --- the Python names other blocks import (schema.md "Names the other blocks' code uses") -----

VALUE_LISTS = {
    "ProjectCode": {n: n for n in ["WSOP", "HCL", "GGMILLIONS", "MPP", "PAD", "GOG", "OTHER"]},
    "SubCategory": {
        n: n
        for n in [
            "ARCHIVE",
            "BRACELET_LV",
            "BRACELET_EU",
            "BRACELET_PARA",
            "CIRCUIT",
            "SUPER_CIRCUIT",
        ]
    },
    "EventType": {
        n: n.lower()
        for n in [
            "BRACELET",
            "CIRCUIT",
            "SUPER_CIRCUIT",
            "HIGH_ROLLER",
            "SUPER_HIGH_ROLLER",
            "CASH_GAME",
            "TV_SERIES",
            "MYSTERY_BOUNTY",
            "MAIN_EVENT",
        ]
    },
    "GameType": {
        "NLHE": "NLHE",
        "PLO": "PLO",
        "PLO8": "PLO8",
        "MIXED": "Mixed",
        "STUD": "Stud",
        "RAZZ": "Razz",
        "HORSE": "HORSE",
        "TRIPLE_DRAW": "2-7TD",
    },
    "EpisodeType": {n: n.lower() for n in ["FULL", "HIGHLIGHT", "RECAP", "INTERVIEW", "SUBCLIP"]},
    "TableType": {
        n: n.lower() for n in ["PRELIMINARY", "DAY1", "DAY2", "DAY3", "FINAL_TABLE", "HEADS_UP"]
    },
    "VersionType": {
        n: n.lower()
        for n in [
            "CLEAN",
            "MASTERED",
            "STREAM",
            "SUBCLIP",
            "FINAL_EDIT",
            "NOBUG",
            "PGM",
            "HIRES",
            "GENERIC",
        ]
    },
    "HandGrade": {"ONE_STAR": "★", "TWO_STAR": "★★", "THREE_STAR": "★★★"},
    "TagCategory": {
        n: n.lower() for n in ["POKER_PLAY", "EMOTION", "EPIC_HAND", "RUNOUT", "ADJECTIVE"]
    },
    "SyncStatus": {n: n.lower() for n in ["IDLE", "SYNCING", "COMPLETED", "FAILED"]},
    "SheetId": {n: n.lower() for n in ["METADATA_ARCHIVE", "ICONIK_METADATA"]},
    "FileCategory": {n: n.lower() for n in ["VIDEO", "METADATA", "SYSTEM", "ARCHIVE", "OTHER"]},
}


@pytest.mark.parametrize("name", sorted(VALUE_LISTS))
def test_value_list_has_exactly_the_contract_attributes_and_stored_strings(name):
    cls = getattr(models, name)
    attributes = {
        k: v
        for k, v in vars(cls).items()
        if not k.startswith("_") and k != "ALL" and isinstance(v, str)
    }
    assert attributes == VALUE_LISTS[name]
    if hasattr(cls, "ALL"):
        assert list(cls.ALL) == list(VALUE_LISTS[name].values())


def test_project_code_all_lists_every_code_in_order():
    assert models.ProjectCode.ALL == ("WSOP", "HCL", "GGMILLIONS", "MPP", "PAD", "GOG", "OTHER")


CONTRACT_NAMES = [
    "Base",
    "TimestampMixin",
    "Project",
    "Season",
    "Event",
    "Episode",
    "VideoFile",
    "HandClip",
    "Tag",
    "Player",
    "GoogleSheetSync",
    "NASFolder",
    "NASFile",
    "hand_clip_tags",
    "hand_clip_players",
    *VALUE_LISTS,
]


def test_every_contract_name_is_importable_from_models():
    missing = [n for n in CONTRACT_NAMES if not hasattr(models, n)]
    assert missing == []
    assert set(CONTRACT_NAMES) <= set(models.__all__)


def test_link_tables_are_table_objects_with_contract_columns():
    from sqlalchemy import Table

    assert isinstance(models.hand_clip_tags, Table)
    assert isinstance(models.hand_clip_players, Table)
    # The contract's columns come first; the tag links also carry their clip's timestamps,
    # which triggers keep (005_tag_link_created_at) and writers never set.
    assert list(models.hand_clip_tags.c.keys())[:2] == ["hand_clip_id", "tag_id"]
    assert list(models.hand_clip_tags.c.keys())[2:] == ["clip_created_at", "clip_deleted_at"]
    assert list(models.hand_clip_players.c.keys()) == ["hand_clip_id", "player_id"]


RELATIONSHIPS = [
    ("Project", "seasons", "Season", "project"),
    ("Season", "events", "Event", "season"),
    ("Event", "episodes", "Episode", "event"),
    ("Episode", "video_files", "VideoFile", "episode"),
    ("Episode", "hand_clips", "HandClip", "episode"),
    ("VideoFile", "hand_clips", "HandClip", "video_file"),
    ("VideoFile", "nas_file", "NASFile", "video_file"),
    ("NASFolder", "files", "NASFile", "folder"),
    ("HandClip", "tags", "Tag", "hand_clips"),
    ("HandClip", "players", "Player", "hand_clips"),
]


@pytest.mark.parametrize(("owner", "attr", "target", "back"), RELATIONSHIPS)
def test_relationship_is_declared_with_back_populates(owner, attr, target, back):
    rel = sa_inspect(getattr(models, owner)).relationships[attr]
    assert rel.mapper.class_ is getattr(models, target)
    assert rel.back_populates == back
    reverse = sa_inspect(getattr(models, target)).relationships[back]
    assert reverse.back_populates == attr
    assert rel.uselist is (attr != "nas_file")


async def test_relationships_navigate_both_ways_after_reload(session: AsyncSession, engine):
    from tests.factories import HandClipFactory, NASFileFactory, PlayerFactory, TagFactory

    clip = HandClipFactory(tags=[TagFactory()], players=[PlayerFactory(), PlayerFactory()])
    nas_file = NASFileFactory(video_file=clip.video_file)
    await session.commit()
    ids = (clip.id, nas_file.id)

    from pokervod_db.database import async_session_factory

    async with async_session_factory(engine)() as fresh:
        clip2 = await fresh.scalar(
            select(models.HandClip)
            .where(models.HandClip.id == ids[0])
            .options(
                selectinload(models.HandClip.tags).selectinload(models.Tag.hand_clips),
                selectinload(models.HandClip.players).selectinload(models.Player.hand_clips),
                selectinload(models.HandClip.video_file).selectinload(models.VideoFile.nas_file),
                selectinload(models.HandClip.video_file).selectinload(models.VideoFile.hand_clips),
                selectinload(models.HandClip.episode)
                .selectinload(models.Episode.event)
                .selectinload(models.Event.season)
                .selectinload(models.Season.project)
                .selectinload(models.Project.seasons),
                selectinload(models.HandClip.episode).selectinload(models.Episode.hand_clips),
                selectinload(models.HandClip.episode).selectinload(models.Episode.video_files),
            )
        )
        assert clip2 is not None
        assert [c.id for c in clip2.tags[0].hand_clips] == [clip2.id]
        assert {c.id for p in clip2.players for c in p.hand_clips} == {clip2.id}
        assert clip2.video_file is not None and clip2.video_file.nas_file is not None
        assert clip2.video_file.nas_file.id == ids[1]
        assert clip2 in clip2.video_file.hand_clips
        episode = clip2.episode
        assert episode is not None
        assert clip2 in episode.hand_clips and clip2.video_file in episode.video_files
        project = episode.event.season.project
        assert episode.event.season in project.seasons

        nas = await fresh.scalar(
            select(models.NASFile)
            .where(models.NASFile.id == ids[1])
            .options(selectinload(models.NASFile.folder).selectinload(models.NASFolder.files))
        )
        assert nas is not None and nas.folder is not None and nas in nas.folder.files


async def test_setting_one_side_of_a_relationship_updates_the_other_in_memory():
    project = models.Project(code="X", name="x")
    season = models.Season(year=2024, name="s", project=project)
    assert project.seasons == [season]
    clip = models.HandClip()
    tag = models.Tag(category="emotion", name="tilt")
    clip.tags.append(tag)
    assert tag.hand_clips == [clip]
    video = models.VideoFile(file_path="/a", file_name="a")
    nas = models.NASFile(file_path="/a", file_name="a", video_file=video)
    assert video.nas_file is nas


# --- defaults and server-side values ----------------------------------------------------------


async def test_model_without_is_active_reads_true_and_sync_status_idle_after_flush(session):
    project = models.Project(code="DEFAULTS", name="d")
    tag = models.Tag(category="emotion", name="calm")
    player = models.Player(name="someone")
    sync = models.GoogleSheetSync(sheet_id=models.SheetId.ICONIK_METADATA, entity_type="clip")
    session.add_all([project, tag, player, sync])
    await session.flush()
    assert (project.is_active, tag.is_active, player.is_active) == (True, True, True)
    assert sync.sync_status == "idle"
    assert sync.last_row_synced == 0
    assert project.created_at is not None and project.updated_at is not None
    assert project.deleted_at is None and not project.is_deleted


def test_plain_sql_insert_gets_id_timestamps_and_defaults(db_settings: Settings):
    with psycopg.connect(db_settings.libpq_url()) as conn:
        row = conn.execute(
            "INSERT INTO pokervod.projects (code, name) VALUES ('SQL', 'plain') "
            "RETURNING id, created_at, updated_at, deleted_at, is_active, now()"
        ).fetchone()
        assert row is not None
        ident, created, updated, deleted, active, now = row
        assert ident is not None and ident.version == 4
        assert created == now and updated == now
        assert deleted is None and active is True
        nas = conn.execute(
            "INSERT INTO pokervod.nas_files (file_path, file_name) VALUES ('/x', 'x') "
            "RETURNING file_category, file_size_bytes, is_hidden_file, is_excluded"
        ).fetchone()
        assert nas == ("other", 0, False, False)
