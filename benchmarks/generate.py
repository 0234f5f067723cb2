"""Generate a realistic archive inside PostgreSQL, fast.

Almost everything is built server-side with ``INSERT … SELECT … FROM generate_series``; only the
players (names from Faker) are sent with a binary COPY. Ids are derived from ordinals
(``md5('vid' || n)::uuid``) so that children can point at their parents without lookups, and
they are as scattered as uuid4 keys are. Secondary indexes and foreign keys are dropped during
the load and rebuilt afterwards (what a restore does too); the result is checked against the
models, so the benchmark always measures the real schema.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import asyncpg

from benchmarks import vocabulary as voc
from benchmarks.scales import Scale

SCHEMA = "pokervod"
GENERATOR_VERSION = 3
"""Bump when the generated data changes, so a reused benchmark database is rebuilt."""


def ordinal_uuid(kind: str, n: int) -> uuid.UUID:
    """The id the generator gives row ``n`` of ``kind`` (the same as SQL ``md5(kind || n)::uuid``)."""
    return uuid.UUID(hashlib.md5(f"{kind}{n}".encode()).hexdigest())


def _uid(kind: str, expr: str) -> str:
    return f"md5('{kind}' || ({expr}))::uuid"


def _arr(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


def _pick(values: list[str], expr: str = "random()") -> str:
    """SQL picking one of ``values`` (uniformly when ``expr`` is uniform in [0, 1))."""
    return f"({_arr(values)})[1 + floor(({expr}) * {len(values)})::int]"


async def _drop_secondary(conn: asyncpg.Connection) -> tuple[list[str], list[str]]:
    """Drop foreign keys and non-constraint indexes; return the SQL that recreates them."""
    fks = await conn.fetch(
        """
        SELECT format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
                      pg_get_constraintdef(oid)) AS create_sql,
               format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS drop_sql
        FROM pg_constraint
        WHERE contype = 'f' AND connamespace = $1::regnamespace
        """,
        SCHEMA,
    )
    indexes = await conn.fetch(
        """
        SELECT pg_get_indexdef(i.indexrelid) AS create_sql,
               format('DROP INDEX %s', i.indexrelid::regclass) AS drop_sql
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        WHERE c.relnamespace = $1::regnamespace
          AND c.relname NOT IN ('alembic_version', 'agent_events')
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
        """,
        SCHEMA,
    )
    for row in [*fks, *indexes]:
        await conn.execute(row["drop_sql"])
    return [r["create_sql"] for r in indexes], [r["create_sql"] for r in fks]


async def generate(
    conn: asyncpg.Connection, scale: Scale, *, log: Callable[[str], None], seed: int = 42
) -> dict[str, float]:
    """Fill schema ``pokervod`` (at head, empty) with an archive of ``scale``; return step timings."""
    scale.check()
    timings: dict[str, float] = {}
    s = scale

    async def step(name: str, sql: str, *args: object) -> None:
        t0 = time.perf_counter()
        await conn.execute(sql, *args)
        timings[name] = round(time.perf_counter() - t0, 3)
        log(f"  {name}: {timings[name]:.1f} s")

    await conn.execute("SET work_mem = '256MB'")
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute(f"SELECT setseed({(seed % 1000) / 1000.0})")
    index_sql, fk_sql = await _drop_secondary(conn)

    # --- catalog ------------------------------------------------------------------------------
    codes = [c for c, _ in voc.PROJECTS]
    names = [n for _, n in voc.PROJECTS]
    per_project = max(1, s.seasons // s.projects)
    per_season = max(1, s.events // s.seasons)
    per_event = max(1, s.episodes // s.events)
    proj_of_season = f"((sn - 1)::bigint * {s.projects} / {s.seasons} + 1)"
    await step(
        "projects",
        f"""
        INSERT INTO {SCHEMA}.projects (id, code, name, description, nas_base_path, filename_pattern)
        SELECT {_uid("prj", "p")},
               COALESCE(({_arr(codes)})[p], 'PRJ' || p),
               COALESCE(({_arr(names)})[p], 'Project ' || p),
               'Broadcast archive of ' || COALESCE(({_arr(names)})[p], 'project ' || p),
               '/nas/poker/' || COALESCE(({_arr(codes)})[p], 'PRJ' || p),
               '{{project}}_{{year}}_E{{event}}_Day{{day}}_Part{{part}}_{{version}}.mp4'
        FROM generate_series(1, {s.projects}) p
        """,
    )
    await step(
        "seasons",
        f"""
        INSERT INTO {SCHEMA}.seasons (id, project_id, year, name, location, sub_category, status)
        SELECT {_uid("sea", "sn")}, {_uid("prj", proj_of_season)}, y.year,
               y.year || ' ' || p.name || ' ' || y.location, y.location,
               {_pick(["ARCHIVE", "BRACELET_LV", "BRACELET_EU", "CIRCUIT", "SUPER_CIRCUIT"])},
               CASE WHEN y.year < 2025 THEN 'completed' ELSE 'active' END
        FROM generate_series(1, {s.seasons}) sn
        CROSS JOIN LATERAL (
            SELECT 2025 - ((sn - 1) % {per_project})::int AS year,
                   {_pick(voc.LOCATIONS, f"(sn % {len(voc.LOCATIONS)})::float / {len(voc.LOCATIONS)}")} AS location
        ) y
        JOIN {SCHEMA}.projects p ON p.id = {_uid("prj", proj_of_season)}
        """,
    )
    game_codes = [g for g, _ in voc.GAMES]
    game_names = [n for _, n in voc.GAMES]
    await step(
        "events",
        f"""
        INSERT INTO {SCHEMA}.events (id, season_id, event_number, name, name_short, event_type,
                                     game_type, buy_in, gtd_amount, venue, start_date, status)
        SELECT {_uid("evt", "e")}, se.id, x.num,
               'Event #' || x.num || ' $' || to_char(x.buy_in, 'FM999,999') || ' '
                   || ({_arr(game_names)})[x.g] || ' ' || ({_arr(voc.EVENT_SUFFIXES)})[x.suf],
               ({_arr(game_codes)})[x.g] || ' ' || ({_arr(voc.EVENT_SUFFIXES)})[x.suf],
               ({_arr(voc.EVENT_TYPES)})[x.suf],
               ({_arr(game_codes)})[x.g], x.buy_in, x.buy_in * (100 + floor(random() * 900)),
               se.location, make_date(se.year, 5 + (x.num % 3), 1 + (x.num % 28)), 'completed'
        FROM generate_series(1, {s.events}) e
        CROSS JOIN LATERAL (
            SELECT ((e - 1) % {per_season} + 1)::int AS num,
                   CASE WHEN random() < 0.6 THEN 1 ELSE 2 + floor(random() * {len(voc.GAMES) - 1})::int END AS g,
                   1 + ((e * 7) % {len(voc.EVENT_SUFFIXES)})::int AS suf,
                   ({"ARRAY" + str(voc.BUY_INS)})[1 + floor(random() * {len(voc.BUY_INS)})::int] AS buy_in
        ) x
        JOIN {SCHEMA}.seasons se ON se.id = {_uid("sea", f"(e - 1)::bigint * {s.seasons} / {s.events} + 1")}
        """,
    )
    await step(
        "episodes",
        f"""
        INSERT INTO {SCHEMA}.episodes (id, event_id, episode_number, day_number, part_number, title,
                                       episode_type, table_type, duration_seconds)
        SELECT {_uid("epi", "ep")}, {_uid("evt", f"(ep - 1)::bigint * {s.events} / {s.episodes} + 1")},
               x.i + 1, x.i / 3 + 1, x.i % 3 + 1,
               'Day ' || (x.i / 3 + 1) || ' Part ' || (x.i % 3 + 1),
               CASE WHEN x.i % 5 = 4 THEN 'highlight' ELSE 'full' END,
               ({_arr(["day1", "day2", "day3", "final_table"])})[least(x.i / 3 + 1, 4)],
               1800 + floor(random() * 12600)::int
        FROM generate_series(1, {s.episodes}) ep
        CROSS JOIN LATERAL (SELECT ((ep - 1) % {per_event})::int AS i) x
        """,
    )

    # --- NAS folders and video files ----------------------------------------------------------
    folders_per_event = max(1, s.nas_folders // s.events)
    await step(
        "nas_folders",
        f"""
        INSERT INTO {SCHEMA}.nas_folders (id, folder_path, folder_name, parent_path, depth,
                                          file_count, folder_count, total_size_bytes, is_empty)
        SELECT {_uid("fld", "f")}, x.parent || '/' || x.name, x.name, x.parent, 5,
               {s.nas_files // s.nas_folders}, 0,
               ({s.nas_files // s.nas_folders})::bigint * (1 + floor(random() * 4e9)::bigint), false
        FROM generate_series(1, {s.nas_folders}) f
        JOIN {SCHEMA}.events ev ON ev.id = {_uid("evt", f"(f - 1)::bigint * {s.events} / {s.nas_folders} + 1")}
        JOIN {SCHEMA}.seasons se ON se.id = ev.season_id
        JOIN {SCHEMA}.projects p ON p.id = se.project_id
        CROSS JOIN LATERAL (
            SELECT p.nas_base_path || '/' || se.year || '/Event_' || lpad(ev.event_number::text, 2, '0')
                       || '_' || replace(ev.name_short, ' ', '_') AS parent,
                   ({_arr(voc.FOLDER_KINDS)})[1 + ((f - 1) % {folders_per_event}) % {len(voc.FOLDER_KINDS)}]
                       || '_' || f AS name
        ) x
        """,
    )
    title_suffix = f"""
        CASE WHEN r.t < 0.25 THEN ' Final Table'
             WHEN r.t < 0.45 THEN ' Highlights'
             WHEN r.t < 0.65 THEN ' feat. ' || {_pick(voc.FAMOUS, "r.a")} || ' vs ' || {_pick(voc.FAMOUS, "r.b")}
             WHEN r.t < 0.70 THEN ' Featured Table Stream'
             ELSE '' END"""
    await step(
        "video_files",
        f"""
        CREATE TEMP TABLE gen_videos AS
        SELECT v, {_uid("vid", "v")} AS id, ep.id AS episode_id, fo.id AS folder_id,
               fo.folder_path || '/' || x.file_name AS file_path, x.file_name,
               se.year || ' ' || p.code || ' ' || ev.name_short || ' ' || ep.title || {title_suffix}
                   AS display_title,
               x.version, r.deleted
        FROM generate_series(1, {s.video_files}) v
        CROSS JOIN LATERAL (SELECT random() AS t, random() AS a, random() AS b,
                                   random() < 0.01 AS deleted, v AS vv) r
        JOIN {SCHEMA}.episodes ep ON ep.id = {_uid("epi", f"(v - 1)::bigint * {s.episodes} / {s.video_files} + 1")}
        JOIN {SCHEMA}.events ev ON ev.id = ep.event_id
        JOIN {SCHEMA}.seasons se ON se.id = ev.season_id
        JOIN {SCHEMA}.projects p ON p.id = se.project_id
        JOIN {SCHEMA}.nas_folders fo ON fo.id = {_uid("fld", f"(v - 1)::bigint * {s.nas_folders} / {s.video_files} + 1")}
        CROSS JOIN LATERAL (
            SELECT ({_arr(voc.VERSIONS)})[1 + (v % {len(voc.VERSIONS)})::int] AS version,
                   p.code || '_' || se.year || '_E' || ev.event_number || '_Day' || ep.day_number
                       || '_Part' || ep.part_number || '_'
                       || ({_arr(voc.VERSIONS)})[1 + (v % {len(voc.VERSIONS)})::int]
                       || '_' || v || '.mp4' AS file_name
        ) x;
        INSERT INTO {SCHEMA}.video_files (
            id, episode_id, file_path, file_name, file_size_bytes, file_format, file_mtime,
            resolution, video_codec, audio_codec, bitrate_kbps, duration_seconds, version_type,
            is_original, display_title, content_type, catalog_title, is_catalog_item, scan_status,
            created_at, updated_at, deleted_at)
        SELECT id, episode_id, file_path, file_name,
               (500 + floor(random() * 8000))::bigint * 1048576, 'mp4',
               now() - interval '5 years' + (v * interval '4 minutes'),
               CASE WHEN v % 4 = 0 THEN '3840x2160' ELSE '1920x1080' END, 'h264', 'aac',
               4000 + floor(random() * 20000)::int, 1800 + floor(random() * 12600)::int, version,
               version = 'mastered', display_title, 'episode',
               CASE WHEN v % 10 = 0 THEN display_title END, v % 10 = 0, 'scanned',
               now() - interval '3 years' + ((v - 1) / 200) * (interval '3 years' / {max(1, s.video_files // 200)}),
               now() - interval '3 years' + ((v - 1) / 200) * (interval '3 years' / {max(1, s.video_files // 200)}),
               CASE WHEN deleted THEN now() - interval '1 day' END
        FROM gen_videos
        """,
    )
    others = s.nas_files - s.video_files
    exts = [e for e, _, _ in voc.OTHER_FILES]
    cats = [c for _, c, _ in voc.OTHER_FILES]
    hidden = ["true" if h else "false" for _, _, h in voc.OTHER_FILES]
    await step(
        "nas_files",
        f"""
        INSERT INTO {SCHEMA}.nas_files (id, file_path, file_name, file_size_bytes, file_extension,
                                        file_mtime, file_category, is_hidden_file, is_excluded,
                                        video_file_id, folder_id, deleted_at)
        SELECT {_uid("fil", "v")}, file_path, file_name,
               (500 + floor(random() * 8000))::bigint * 1048576, '.mp4',
               now() - interval '5 years' + (v * interval '4 minutes'), 'video', false, false,
               id, folder_id, CASE WHEN deleted THEN now() - interval '1 day' END
        FROM gen_videos;
        INSERT INTO {SCHEMA}.nas_files (id, file_path, file_name, file_size_bytes, file_extension,
                                        file_mtime, file_category, is_hidden_file, is_excluded,
                                        exclude_reason, folder_id)
        SELECT {_uid("fil", f"{s.video_files} + i")}, fo.folder_path || '/' || x.file_name,
               x.file_name, floor(random() * 5e6)::bigint, left(x.ext, 20),
               now() - interval '5 years' + (i * interval '3 minutes'),
               ({_arr(cats)})[x.k], (ARRAY[{", ".join(hidden)}])[x.k], (ARRAY[{", ".join(hidden)}])[x.k],
               CASE WHEN (ARRAY[{", ".join(hidden)}])[x.k] THEN 'system file' END, fo.id
        FROM generate_series(1, {others}) i
        JOIN {SCHEMA}.nas_folders fo ON fo.id = {_uid("fld", f"(i - 1)::bigint * {s.nas_folders} / {max(others, 1)} + 1")}
        CROSS JOIN LATERAL (
            SELECT 1 + (i % {len(exts)})::int AS k,
                   ({_arr(exts)})[1 + (i % {len(exts)})::int] AS ext,
                   CASE WHEN ({_arr(exts)})[1 + (i % {len(exts)})::int] LIKE '.%'
                            AND ({_arr(exts)})[1 + (i % {len(exts)})::int] <> '.DS_Store'
                        THEN replace(fo.folder_name, '/', '_') || '_' || i || ({_arr(exts)})[1 + (i % {len(exts)})::int]
                        ELSE ({_arr(exts)})[1 + (i % {len(exts)})::int] END AS file_name
        ) x
        """,
    )

    # --- tags and players ---------------------------------------------------------------------
    categories = list(voc.TAGS)
    tag_rows = []
    for t in range(1, s.tags + 1):
        category = categories[(t - 1) % len(categories)]
        names_ = voc.TAGS[category]
        k = (t - 1) // len(categories)
        name = names_[k] if k < len(names_) else f"{names_[k % len(names_)]}_{k // len(names_)}"
        tag_rows.append((ordinal_uuid("tag", t), category, name, name.replace("_", " ").title(), t))
    t0 = time.perf_counter()
    await conn.copy_records_to_table(
        "tags",
        schema_name=SCHEMA,
        columns=["id", "category", "name", "name_display", "sort_order"],
        records=tag_rows,
    )
    timings["tags"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    await conn.copy_records_to_table(
        "players",
        schema_name=SCHEMA,
        columns=[
            "id",
            "name",
            "name_display",
            "nationality",
            "hendon_mob_id",
            "total_live_earnings",
            "wsop_bracelets",
        ],
        records=_players(s.players, seed),
    )
    timings["players"] = round(time.perf_counter() - t0, 3)
    log(f"  tags + players: {timings['tags'] + timings['players']:.1f} s")

    # --- hand clips and links -----------------------------------------------------------------
    groups = max(1, s.hand_clips // 500)
    notes = f"""
        {_pick(voc.FAMOUS, "r.a")} || ' ' || {_pick(voc.ACTIONS, "r.b")} || ' with '
        || {_pick(voc.HANDS, "r.c")} || ' on a ' || {_pick(voc.BOARDS, "r.d")} || ' board, '
        || {_pick(voc.FAMOUS, "r.e")} || ' ' || {_pick(voc.RESPONSES, "r.f")}
        || CASE WHEN r.g < 0.7 THEN ' and ' || {_pick(voc.OUTCOMES, "r.h")} ELSE '' END
        || CASE WHEN r.g < 0.3 THEN '. ' || {_pick(voc.FAMOUS, "r.h")} || ' '
                || {_pick(voc.ACTIONS, "r.c")} || ' with ' || {_pick(voc.HANDS, "r.a")} ELSE '' END"""
    await step(
        "hand_clips",
        f"""
        INSERT INTO {SCHEMA}.hand_clips (
            id, episode_id, video_file_id, sheet_source, sheet_row_number, nas_folder_link,
            sheet_file_name, title, timecode, timecode_end, duration_seconds, notes, hand_grade,
            pot_size, winner_hand, hands_involved, created_at, updated_at, deleted_at)
        SELECT {_uid("clp", "n")}, gv.episode_id, gv.id,
               CASE WHEN n % 2 = 1 THEN 'metadata_archive' ELSE 'iconik_metadata' END,
               ((n + 1) / 2)::int, left(gv.file_path, 1000), gv.file_name,
               {_pick(voc.FAMOUS, "r.a")} || ' vs ' || {_pick(voc.FAMOUS, "r.e")} || ': '
                   || {_pick(voc.HANDS, "r.c")} || ' against ' || {_pick(voc.HANDS, "r.f")},
               to_char(make_interval(secs => floor(r.t * 14000)), 'HH24:MI:SS'),
               to_char(make_interval(secs => floor(r.t * 14000) + 90), 'HH24:MI:SS'),
               30 + floor(r.d * 300)::int,
               CASE WHEN r.g < 0.95 THEN {notes} END,
               CASE WHEN r.h < 0.5 THEN '★' WHEN r.h < 0.85 THEN '★★' ELSE '★★★' END,
               floor(r.b * 5e6)::bigint, {_pick(voc.WINNER_HANDS, "r.b")},
               {_pick(voc.WINNER_HANDS, "r.c")} || ' vs ' || {_pick(voc.WINNER_HANDS, "r.d")},
               now() - interval '3 years' + ((n - 1) / 500) * (interval '3 years' / {groups}),
               now() - interval '3 years' + ((n - 1) / 500) * (interval '3 years' / {groups}),
               CASE WHEN r.x < 0.01 THEN now() - interval '1 day' END
        FROM generate_series(1, {s.hand_clips}) n
        CROSS JOIN LATERAL (SELECT random() AS a, random() AS b, random() AS c, random() AS d,
                                   random() AS e, random() AS f, random() AS g, random() AS h,
                                   random() AS t, random() AS x, n AS nn) r
        JOIN gen_videos gv ON gv.v = (n - 1)::bigint * {s.video_files} / {s.hand_clips} + 1
        """,
    )
    for name, table, kind, total, links, power in (
        ("tag_links", "hand_clip_tags", "tag", s.tags, s.tag_links, 2),
        ("player_links", "hand_clip_players", "ply", s.players, s.player_links, 3),
    ):
        column = "tag_id" if kind == "tag" else "player_id"
        k = links // s.hand_clips
        max_stride = max(1, (total - 1) // max(1, k - 1))
        # First pick skewed (a few tags and star players are everywhere), the others spread out;
        # the stride keeps the picks of one clip distinct.
        links_sql = f"""
            SELECT {_uid("clp", "x.c")} AS hand_clip_id,
                   {_uid(kind, f"(x.first + j * x.stride) % {total} + 1")} AS {column}
            FROM (SELECT c, floor({total} * power(random(), {power}))::int AS first,
                         1 + floor(random() * {max_stride})::int AS stride
                  FROM generate_series(1, {s.hand_clips}) c) x
            CROSS JOIN LATERAL generate_series(0, {k - 1} + 0 * x.c) j
            """
        if table != "hand_clip_tags":
            await step(name, f"INSERT INTO {SCHEMA}.{table} (hand_clip_id, {column}) {links_sql}")
            continue
        # The tag links carry their clip's timestamps and feed per-tag counters, both kept by
        # triggers (005); for the bulk load the triggers are off and one join and one
        # aggregate do their work.
        await conn.execute(f"ALTER TABLE {SCHEMA}.hand_clip_tags DISABLE TRIGGER USER")
        await step(
            name,
            f"""
            INSERT INTO {SCHEMA}.hand_clip_tags
                (hand_clip_id, tag_id, clip_created_at, clip_deleted_at)
            SELECT l.hand_clip_id, l.tag_id, c.created_at, c.deleted_at
            FROM ({links_sql}) l JOIN {SCHEMA}.hand_clips c ON c.id = l.hand_clip_id
            """,
        )
        await step(
            "tag_clip_counts",
            f"""
            INSERT INTO {SCHEMA}.tag_clip_counts (tag_id, clips, live_clips)
            SELECT tag_id, count(*), count(*) FILTER (WHERE clip_deleted_at IS NULL)
            FROM {SCHEMA}.hand_clip_tags GROUP BY tag_id
            """,
        )
        await conn.execute(f"ALTER TABLE {SCHEMA}.hand_clip_tags ENABLE TRIGGER USER")
    await conn.execute("DROP TABLE gen_videos")

    # --- indexes, keys, statistics ------------------------------------------------------------
    t0 = time.perf_counter()
    for sql in index_sql:
        await conn.execute(sql)
    timings["indexes"] = round(time.perf_counter() - t0, 3)
    log(f"  indexes: {timings['indexes']:.1f} s")
    t0 = time.perf_counter()
    for sql in fk_sql:
        await conn.execute(sql)
    timings["foreign_keys"] = round(time.perf_counter() - t0, 3)
    log(f"  foreign keys: {timings['foreign_keys']:.1f} s")
    t0 = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE, FREEZE)")
    timings["vacuum_analyze"] = round(time.perf_counter() - t0, 3)
    log(f"  vacuum analyze: {timings['vacuum_analyze']:.1f} s")
    return timings


def _players(n: int, seed: int) -> list[tuple[object, ...]]:
    """Player rows: the famous names first (the skewed picks favour low ordinals), then Faker's."""
    from faker import Faker

    fake = Faker(["en_US", "de_DE", "es_ES", "fr_FR", "it_IT", "ko_KR", "ja_JP", "pt_BR"])
    Faker.seed(seed)
    rng = random.Random(seed)
    countries = ["USA", "Canada", "UK", "Germany", "Brazil", "Korea", "Japan", "Spain", "France"]
    seen: set[str] = set()
    rows: list[tuple[object, ...]] = []
    for i in range(1, n + 1):
        if i <= len(voc.FAMOUS):
            name = voc.FAMOUS[i - 1]
        else:
            name = f"{fake.first_name()} {fake.last_name()}"
        base, k = name, 1
        while name in seen:
            k += 1
            name = f"{base} {k}"
        seen.add(name)
        earnings = None if rng.random() < 0.3 else Decimal(f"{rng.random() * 5e7 / i**0.5:.2f}")
        rows.append(
            (
                ordinal_uuid("ply", i),
                name[:200],
                name[:200],
                rng.choice(countries),
                str(100000 + i) if rng.random() < 0.6 else None,
                earnings,
                max(0, int(12 / i**0.5 - rng.random())),
            )
        )
    return rows
