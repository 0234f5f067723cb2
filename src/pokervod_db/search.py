"""Full-text search of titles and clip notes: the exact best ``k`` by BM25, found without
scoring every match.

Ranking (documented in docs/search.md): BM25 with binary term frequency, the form search
engines use for short fields (Lucene/Elasticsearch ``index_options: docs``): a one-sentence note
that says "river" twice is not twice as much about the river. For a document ``d`` of ``dl``
distinct lexemes (``length(tsvector)``) and the set ``T`` of lexemes of the query's
indexable part (``querytree``: what must or may be present; excluded words are left out)::

    score(d) = norm(dl) * sum(idf(t) for t in T if t in d)
    norm(dl) = (k1 + 1) / (1 + k1 * (1 - b + b * dl / avgdl))      k1 = 1.2, b = 0.75
    idf(t)   = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))

``n_t / N`` is the share of rows holding ``t`` in PostgreSQL's own statistics of the column
(``pg_stats.most_common_elem_freqs``, kept fresh by autovacuum's ANALYZE; a lexeme outside that
list gets half the smallest listed share, as the planner assumes; no statistics: idf 1).
``avgdl`` is a fixed pivot per column (`NOTES_AVGDL`, `TITLES_AVGDL`), so a row's score does
not drift as others are written. Ties go to the newer row, then the larger id.

Why it is fast: for a query whose words must all be present (words, phrases, exclusions: no
``or``), every match has the same term sum, so the ranking is by ``dl`` alone, shortest first.
Migration 006 indexes exactly that order, ``(length(tsvector), created_at DESC, id DESC)``: the
best ``k`` are the first ``k`` matches of a walk of that index (checking ``@@`` on each row), and
the walk stops there however many rows match. With ``or`` the term sum varies, but not within
a *term class* (the matches holding exactly the same scored terms): an ``or`` query of up to
`MAX_CLASS_TERMS` terms is ranked class by class (`_by_classes`: one walk, then per-length GIN
probes of the classes not settled yet, each closed by its count or by its bound ``norm(length)
* its sum``), and the best of the classes' best is exact. Longer ``or`` queries stop the walk
once the ``k``-th best score beats the best any unread row could reach, ``norm(dl) * sum of all
idf`` (Fagin's threshold algorithm, on one list). A walk that has not finished after
`SEARCH_SCAN` rows (a rare word) goes on from its last length through a GIN index with a length
marker, one length at a time, and after a few lengths without a result scores every remaining
match in one GIN search; each step is exact (docs/search.md).
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from pokervod_db.instrumentation import timed

MAX_RESULTS = 1000
"""The largest ``limit`` a search accepts (as ``queries.MAX_LIMIT``)."""

MAX_QUERY_CHARS = 1000
"""Longer search strings are refused with a ValueError (nobody types more; it bounds the work)."""

SEARCH_SCAN = 4_000
"""How many rows the ranking walk reads before it asks the GIN index instead."""

PROBE_EMPTY_LENGTHS = 3
"""After this many lengths in a row without a match, the length probe stops and one GIN search
fetches every remaining match instead (each probed length repeats the words' GIN search)."""

BM25_K1 = 1.2
BM25_B = 0.75
NOTES_AVGDL = 20.0
"""Length pivot of clip notes, in distinct lexemes (the generated archive's mean is 20–21)."""
TITLES_AVGDL = 10.0
"""Length pivot of video titles, in distinct lexemes."""

MAX_CLASS_TERMS = 5
"""The most scored terms an ``or`` query may have to be ranked by term classes (at most
``2 ** 5 - 1`` = 31 conjunctive walks); more go through the threshold walk."""

CLASS_FETCH = 2_000
"""How many matches of an ``or`` query's open term classes one GIN search may score before the
classes are probed length by length instead."""

OR_PROBE_LENGTHS = 6
"""How many lengths past the window an ``or`` query probes one by one before it scores every
remaining match in one GIN search."""

Order = Literal["rank", "newest"]

STATISTICS_SQL = "ANALYZE pokervod.hand_clips (notes_tsv), pokervod.video_files (title_tsv)"
"""Refreshes the statistics `idf_weights` reads. A restore runs it before its commit: freshly
loaded tables have none until autovacuum's ANALYZE, and until then every word would weigh the
same (0.3 s on the default archive; the whole database would take 1.6 s)."""


@dataclass(frozen=True, slots=True)
class VideoFileHit:
    """A video file found by title, with its score (``rank``, BM25; see the module doc)."""

    id: uuid.UUID
    display_title: str | None
    file_name: str
    episode_id: uuid.UUID | None
    created_at: datetime
    rank: float


@dataclass(frozen=True, slots=True)
class HandClipHit:
    """A hand clip found by its notes, with its score (``rank``, BM25; see the module doc)."""

    id: uuid.UUID
    title: str | None
    notes: str | None
    video_file_id: uuid.UUID | None
    created_at: datetime
    rank: float


@dataclass(frozen=True, slots=True)
class _Target:
    table: str
    vector: str
    columns: str
    avgdl: float


_CLIPS = _Target(
    "hand_clips", "notes_tsv", "id, title, notes, video_file_id, created_at", NOTES_AVGDL
)
_VIDEOS = _Target(
    "video_files", "title_tsv", "id, display_title, file_name, episode_id, created_at", TITLES_AVGDL
)


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A search string as PostgreSQL reads it: the tsquery, its scored lexemes, and its shape."""

    tsquery: str
    terms: tuple[str, ...]
    conjunctive: bool
    """Every scored lexeme is in every match (no ``or``), so all matches share one term sum."""
    relaxed: str = ""
    """``querytree`` with phrase operators read as AND: every match satisfies it (a superset
    test that needs no positions), "" when there is nothing to index."""


# --- the score, in SQL ---------------------------------------------------------------------------


def norm_sql(dl: str, avgdl: float) -> str:
    """SQL for BM25's length factor with tf = 1 (the literal constants keep it one expression)."""
    return (
        f"({BM25_K1!r}::float8 + 1) / (1 + {BM25_K1!r}::float8 * "
        f"(1 - {BM25_B!r}::float8 + {BM25_B!r}::float8 * ({dl})::float8 / {avgdl!r}::float8))"
    )


def score_sql(vector: str, avgdl: float, n_terms: int) -> str:
    """SQL for the score of the row whose tsvector is ``vector``.

    Binds ``:t0``… (each term as a one-lexeme tsquery) and ``:w0``… (its idf); the terms are
    added left to right from 0, as Python's ``sum(idfs, 0.0)`` does.
    """
    terms = "".join(
        f" + CASE WHEN {vector} @@ CAST(:t{i} AS tsquery) THEN CAST(:w{i} AS float8) ELSE 0 END"
        for i in range(n_terms)
    )
    return f"{norm_sql(f'length({vector})', avgdl)} * (0::float8{terms})"


def term_params(terms: Sequence[str], idfs: Sequence[float]) -> dict[str, Any]:
    """The bind parameters of `score_sql`: each lexeme quoted as a tsquery literal."""
    params: dict[str, Any] = {}
    for i, (term, idf) in enumerate(zip(terms, idfs, strict=True)):
        params[f"t{i}"] = "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"
        params[f"w{i}"] = idf
    return params


def norm(dl: int, avgdl: float) -> float:
    """`norm_sql` in Python, the same operations in the same order (for the walk's bound)."""
    return (BM25_K1 + 1) / (1 + BM25_K1 * (1 - BM25_B + BM25_B * float(dl) / avgdl))


# --- reading the query ---------------------------------------------------------------------------

_LEXEME = re.compile(r"'((?:[^'\\]|''|\\.)*)'")


def _lexemes(tree: str) -> tuple[list[str], str]:
    """The quoted lexemes of a tsquery's text form, and the text with them taken out."""
    terms = [re.sub(r"\\(.)", r"\1", m.group(1).replace("''", "'")) for m in _LEXEME.finditer(tree)]
    return terms, _LEXEME.sub(" ", tree)


def _clean(q: str) -> str:
    if not isinstance(q, str):
        raise TypeError(f"search text must be a str, got {type(q).__name__}")
    if len(q) > MAX_QUERY_CHARS:
        raise ValueError(
            f"search text is {len(q)} characters long; shorten it to at most {MAX_QUERY_CHARS}"
        )
    # NUL cannot be sent to PostgreSQL; lone surrogates cannot be encoded. Both read as spaces,
    # as any other punctuation does.
    q = q.replace("\x00", " ")
    return q.encode("utf-8", "replace").decode("utf-8")


_PARSE_SQL = (
    "SELECT q::text, querytree(q), numnode(q) "
    "FROM websearch_to_tsquery('english', CAST(:q AS text)) AS q"
)


async def parse_query(conn: AsyncConnection, q: str) -> ParsedQuery | None:
    """How PostgreSQL reads ``q``; None when it holds nothing to search for.

    ``websearch_to_tsquery`` reads almost anything leniently, but some inputs make it fail
    (fifty ``-`` in a row: "tsquery stack too small"). It runs inside a savepoint so such a
    failure reads as "nothing to search for" and leaves the caller's transaction usable.
    """
    q = _clean(q)
    if not q.strip():
        return None
    try:
        async with conn.begin_nested():
            row = (await conn.execute(text(_PARSE_SQL), {"q": q})).one()
    except DBAPIError as exc:
        state = str(getattr(exc.orig, "sqlstate", "") or "")
        if state == "XX000" or state.startswith("54"):  # parser limits: unreadable input
            return None
        raise
    tsquery, tree, nodes = row
    if not nodes:
        return None  # only stop words, or no words at all
    terms, operators = _lexemes(tree if tree != "T" else "")
    unique = tuple(dict.fromkeys(terms))
    conjunctive = "|" not in operators and "!" not in operators
    relaxed = _PHRASE_OR_LEXEME.sub(lambda m: m.group(1) or "&", tree) if tree != "T" else ""
    return ParsedQuery(tsquery=tsquery, terms=unique, conjunctive=conjunctive, relaxed=relaxed)


_PHRASE_OR_LEXEME = re.compile(r"('(?:[^'\\]|''|\\.)*')|<(?:-|\d+)>")


_STATS_SQL = """
SELECT c.reltuples::float8,
       s.most_common_elems::text::text[],
       s.most_common_elem_freqs
FROM pg_class c
LEFT JOIN pg_stats s
  ON s.schemaname = 'pokervod' AND s.tablename = :table AND s.attname = :column
WHERE c.oid = CAST(:regclass AS regclass)
"""


@dataclass(frozen=True, slots=True)
class TermStatistics:
    """What the column's statistics say of some terms: the rows, and each term's share of them."""

    rows: float
    shares: tuple[float, ...]

    def idfs(self) -> list[float]:
        """BM25's idf of each term (module doc)."""
        return [
            math.log(1 + (self.rows - n + 0.5) / (n + 0.5))
            for n in (share * self.rows for share in self.shares)
        ]

    def rows_holding(self, masks: Sequence[int]) -> float:
        """About how many rows hold all the terms of one of the classes ``masks`` (the terms
        taken as independent): a guess to plan by, never to rank by."""
        return self.rows * sum(
            math.prod(share for i, share in enumerate(self.shares) if m >> i & 1) for m in masks
        )


async def term_statistics(
    conn: AsyncConnection, target: _Target, terms: Sequence[str]
) -> TermStatistics | None:
    """The statistics of ``terms`` in the column of ``target``; None when it has none."""
    if not terms:
        return None
    row = (
        await conn.execute(
            text(_STATS_SQL),
            {
                "table": target.table,
                "column": target.vector,
                "regclass": f"pokervod.{target.table}",
            },
        )
    ).one()
    total, elems, freqs = row
    if not elems or not freqs or total is None or total <= 0:
        return None
    share = dict(zip(elems, freqs, strict=False))
    floor = freqs[len(elems)] / 2 if len(freqs) > len(elems) else min(freqs) / 2
    return TermStatistics(
        rows=float(total), shares=tuple(min(share.get(t, floor), 1.0) for t in terms)
    )


def _idfs(stats: TermStatistics | None, n: int) -> list[float]:
    return stats.idfs() if stats is not None else [1.0] * n


async def idf_weights(conn: AsyncConnection, target: _Target, terms: Sequence[str]) -> list[float]:
    """The idf of each term from the column's statistics (1.0 each when there are none)."""
    return _idfs(await term_statistics(conn, target, terms), len(terms))


# --- finding the best k ----------------------------------------------------------------------

# Step 1, the walk: rows in ranking order (`ix_*_rank`) or newest first (`ix_*_created_at`), at
# most :scan of them, keeping the matches. The inner LIMIT bounds the walk and the planner
# cannot push the @@ below it, so the plan is the index walk whatever the query; the outer
# LIMIT stops it at the k-th match. The outer ORDER BY names the walk's own output columns, so
# the planner sees the rows come sorted (ordering by length(vector) again would add a sort).
_FIRST_SQL = """
SELECT {columns}, {score} AS score
FROM (
    SELECT {columns}, {vector}, length({vector}) AS dl
    FROM pokervod.{table}{where_live}
    ORDER BY {order}
    LIMIT :scan
) walk
WHERE {vector} @@ CAST(:tsq AS tsquery)
ORDER BY {outer_order}
LIMIT :limit
"""
# The walk for conjunctive queries in ranking order also passes on the last row it reads (the
# :scan-th, as a row that did not match), which only happens when it found fewer than :limit:
# its length says where the walk stopped (every shorter row was read), for the length probe,
# at no extra read. row_number() streams: it does not make the walk read further.
_NUMBERED_WALK = """
SELECT {{columns}}, {{score}} AS score, dl, {mask}matched, rn = :scan AS last_read
FROM (
    SELECT {{columns}}, {{vector}}, dl, {{vector}} @@ CAST(:tsq AS tsquery) AS matched,
           row_number() OVER (ORDER BY dl, created_at DESC, id DESC) AS rn
    FROM (
        SELECT {{columns}}, {{vector}}, length({{vector}}) AS dl
        FROM pokervod.{{table}}{{where_live}}
        ORDER BY {{order}}
        LIMIT :scan
    ) walk
) numbered
WHERE matched OR rn = :scan
ORDER BY dl, created_at DESC, id DESC
{limit}"""
_RANK_WALK_SQL = _NUMBERED_WALK.format(mask="", limit="LIMIT :limit\n")
# The same walk for queries with `or`: every match of the window, scored, with how many rows
# were read and the greatest length read (the walk is in length order, so max = last).
_WINDOW_SQL = """
SELECT {columns}, {score} AS score, dl, scanned, last_dl
FROM (
    SELECT {columns}, {vector}, dl,
           count(*) OVER () AS scanned, max(dl) OVER () AS last_dl
    FROM (
        SELECT {columns}, {vector}, length({vector}) AS dl
        FROM pokervod.{table}{where_live}
        ORDER BY {order}
        LIMIT :scan
    ) walk
) counted
WHERE {vector} @@ CAST(:tsq AS tsquery)
"""
# The walk for `or` queries ranked by term classes: every match of the window, scored, with its
# class (the bit mask of the scored terms it holds), and the last row read as in
# `_RANK_WALK_SQL` (whose length says where the walk stopped).
_CLASS_WALK_SQL = _NUMBERED_WALK.format(mask="{mask} AS mask, ", limit="")
# The matches of the open classes (:tsq: the query AND their union) between two lengths, at
# most :fetch of them: one GIN search; fewer than :fetch means all of them. (An OR of the
# lengths' lexemes in the length index would skip rows of other lengths, but decoding those
# long posting lists costs more: 750 ms against 60 ms for `cooler or bad beat`.) `+ 0` keeps
# the planner off a bitmap scan of the length range of `ix_*_rank`: with both bounds it can look
# selective, and then every row of the range is read (seen: 5.9 s for a phrase).
_CLASS_FETCH_SQL = """
SELECT {columns}, {score} AS score
FROM pokervod.{table}
WHERE {vector} @@ CAST(:tsq AS tsquery)
      AND length({vector}) + 0 BETWEEN CAST(:from_dl AS int) AND CAST(:to_dl AS int)
      AND {mask} = ANY(CAST(:masks AS int[])){and_live}
LIMIT :fetch
"""
# One length (:d) of the open classes (:tsq: the query AND their union), through the length GIN
# index: the newest :limit of each class.
_CLASS_PROBE_SQL = """
SELECT {columns}, score, mask
FROM (
    SELECT {columns}, {score} AS score, {mask} AS mask,
           row_number() OVER (PARTITION BY {mask} ORDER BY created_at DESC, id DESC) AS rn
    FROM pokervod.{table}
    WHERE ({len_vector}) @@ (CAST(:tsq AS tsquery) && format('%L', ' ' || CAST(:d AS int))::tsquery)
          AND {mask} = ANY(CAST(:masks AS int[])){and_live}
) ranked
WHERE rn <= :limit
"""
# Step 2 for conjunctive queries: the lengths in increasing order, each probed through the
# length GIN index, newest first within a length; the outer LIMIT stops at the k-th match, so
# only lengths up to the k-th match's are probed and a length without matches costs one GIN
# search (an AND of the query's words and the length's lexeme, inside the GIN index).
_PROBE_SQL = """
SELECT {columns}, {score} AS score
FROM (
    SELECT m.*
    FROM generate_series(CAST(:shortest AS int), CAST(:longest AS int)) AS g(d)
    CROSS JOIN LATERAL (
        SELECT {columns}, {vector}
        FROM pokervod.{table}
        WHERE ({len_vector}) @@ (CAST(:tsq AS tsquery) && format('%L', ' ' || g.d)::tsquery)
              {and_live}
        ORDER BY created_at DESC, id DESC
        LIMIT :limit
    ) m
    LIMIT :limit
) found
"""
# Step 2 for `or` queries whose window did not settle the top k: one length at a time (through
# the length GIN index), its best :limit by score; lengths are taken in increasing order until
# the k-th best so far beats the most any longer row could score (the threshold test of the
# window, continued length by length).
_OR_PROBE_SQL = """
SELECT {columns}, {score} AS score
FROM pokervod.{table}
WHERE ({len_vector}) @@ (CAST(:tsq AS tsquery) && format('%L', ' ' || CAST(:d AS int))::tsquery)
      {and_live}
ORDER BY score DESC, created_at DESC, id DESC
LIMIT :limit
"""
# Whether some row at least :from_dl long holds every scored term (`{every_term}`: their AND);
# one GIN search, which stops at the first such row.
_TOGETHER_SQL = """
SELECT EXISTS (
    SELECT 1 FROM pokervod.{table}
    WHERE {vector} @@ ({every_term}) AND length({vector}) >= CAST(:from_dl AS int){and_live}
)
"""
# The table's greatest length (where the length probe ends), from the end of `ix_*_rank`.
_LONGEST_SQL = """
SELECT length({vector}) FROM pokervod.{table}
WHERE length({vector}) IS NOT NULL ORDER BY length({vector}) DESC LIMIT 1
"""
# Step 2b for conjunctive queries, after PROBE_EMPTY_LENGTHS empty lengths: one GIN search for
# all matches at least :from_dl long (PostgreSQL decodes the words' posting lists and rechecks
# a phrase once, not once per length), the best :limit kept.
_REST_SQL = """
SELECT {columns}, {score} AS score
FROM pokervod.{table}
WHERE {vector} @@ CAST(:tsq AS tsquery) AND length({vector}) >= CAST(:from_dl AS int){and_live}
ORDER BY {final_order}
LIMIT :limit
"""
# Which sets of the query's terms can make a row match: each candidate set as a vector of its
# lexemes without positions (a phrase then reads as an AND of its words, a necessary condition
# for a real row holding exactly those terms), kept if it satisfies the query.
_CLASSES_SQL = """
SELECT m.mask
FROM unnest(CAST(:masks AS int[])) AS m(mask)
WHERE array_to_tsvector(ARRAY(
          SELECT u.t FROM unnest(CAST(:terms AS text[])) WITH ORDINALITY AS u(t, i)
          WHERE m.mask & (1 << (u.i::int - 1)) <> 0
      )) @@ CAST(:tsq AS tsquery)
"""
# Step 2 otherwise: all matches from the GIN index, scored, the best :limit kept.
_ALL_SQL = """
SELECT {columns}, {score} AS score
FROM pokervod.{table}
WHERE {vector} @@ CAST(:tsq AS tsquery){and_live}
ORDER BY {final_order}
LIMIT :limit
"""
_RANK_ORDER = "length({vector}), created_at DESC, id DESC"
_NEWEST_ORDER = "created_at DESC, id DESC"
_FINAL_RANK = "score DESC, created_at DESC, id DESC"
_SERIAL = {"max_parallel_workers_per_gather": "0"}
# The walk must be the index walk even where the table holds fewer than :scan rows (where a
# sort of the whole table looks cheaper but reads every row).
_ONLY_WALK = {"enable_seqscan": "off", "enable_bitmapscan": "off", "enable_sort": "off"}
# GIN searches: bitmap scans only (the length bounds of the probe are index-only scans).
_ONLY_BITMAP = {
    "enable_seqscan": "off",
    "enable_bitmapscan": "on",
    "enable_indexscan": "off",
    "enable_sort": "on",
}


def _sql(template: str, target: _Target, order: Order, include_deleted: bool, n: int) -> str:
    return template.format(
        columns=target.columns,
        vector=target.vector,
        len_vector=(
            f"{target.vector} || array_to_tsvector("
            f"ARRAY[' ' || COALESCE(length({target.vector}), 0)::text])"
        ),
        table=target.table,
        score=score_sql(target.vector, target.avgdl, n),
        mask="0"
        + "".join(
            f" + CASE WHEN {target.vector} @@ CAST(:t{i} AS tsquery) THEN {1 << i} ELSE 0 END"
            for i in range(n)
        ),
        where_live="" if include_deleted else " WHERE deleted_at IS NULL",
        and_live="" if include_deleted else " AND deleted_at IS NULL",
        order=(_RANK_ORDER if order == "rank" else _NEWEST_ORDER).format(vector=target.vector),
        outer_order="dl, created_at DESC, id DESC" if order == "rank" else _NEWEST_ORDER,
        final_order=_FINAL_RANK if order == "rank" else _NEWEST_ORDER,
    )


@asynccontextmanager
async def _settings(conn: AsyncConnection, wanted: dict[str, str]) -> AsyncIterator[None]:
    """Transaction-local planner settings for the block, put back afterwards."""
    names, values = list(wanted), list(wanted.values())
    read = ", ".join(f"current_setting('{n}')" for n in names)
    write = ", ".join(f"set_config('{n}', :v{i}, true)" for i, n in enumerate(names))
    params = {f"v{i}": v for i, v in enumerate(values)}
    before = list((await conn.execute(text(f"SELECT {read}, {write}"), params)).one())
    yield
    restore = {f"v{i}": v for i, v in enumerate(before[: len(names)])}
    await conn.execute(text(f"SELECT {write}"), restore)


def _best_first(rows: Sequence[Sequence[Any]], limit: int) -> list[tuple[Any, ...]]:
    # rows: the columns (id first, created_at fifth), then the score
    ordered = sorted((tuple(r[:6]) for r in rows), key=lambda r: (r[5], r[4], r[0]), reverse=True)
    return ordered[:limit]


async def top_matches(
    conn: AsyncConnection,
    target: _Target,
    parsed: ParsedQuery,
    *,
    limit: int,
    order: Order,
    include_deleted: bool,
) -> list[tuple[Any, ...]]:
    """The best ``limit`` rows for ``parsed``: column values then score, best first."""
    stats = await term_statistics(conn, target, parsed.terms)
    n = len(parsed.terms)
    idfs = _idfs(stats, n)
    params: dict[str, Any] = {
        "tsq": parsed.tsquery,
        "scan": SEARCH_SCAN,
        "limit": limit,
        **term_params(parsed.terms, idfs),
    }
    # nothing is scored (only exclusions): every score is 0, the newest are the best
    order = order if parsed.terms else "newest"

    async def run(template: str, walk_order: Order) -> list[Any]:
        sql = _sql(template, target, walk_order, include_deleted, n)
        return list((await conn.execute(text(sql), params)).all())

    classes = await _term_classes(conn, parsed, order)
    if classes is not None:
        return await _by_classes(conn, run, params, parsed, idfs, classes, limit, target, stats)
    last_dl: int | None = None
    longest: int | None = None
    window: list[Any] = []
    async with _settings(conn, {**_SERIAL, **_ONLY_WALK}):
        if order == "rank" and parsed.conjunctive:
            # All matches share one term sum: the walk's order (shortest first) is the result's.
            walked, last_dl = await _rank_walk(run, limit)
            if last_dl is None:
                return walked
        elif order == "newest":
            rows = await run(_FIRST_SQL, order)
            if len(rows) == limit:
                return [tuple(r) for r in rows]
        else:
            window = await run(_WINDOW_SQL, "rank")
            done = _threshold_reached(window, limit, target, idfs)
            if done is not None:
                return done
            last_dl = window[0][-1] if window else None
        if last_dl is not None:
            longest = (await run(_LONGEST_SQL, "rank"))[0][0]
        if not parsed.terms:
            # Only exclusions: the GIN index cannot find such matches; a complete newest-first
            # walk can (slow only for an exclusion that leaves almost nothing).
            params["scan"] = None
            return [tuple(r) for r in await run(_FIRST_SQL, "newest")]
    async with _settings(conn, {**_SERIAL, **_ONLY_BITMAP}):
        if last_dl is not None and longest is not None:  # ranking order, the walk was cut
            if parsed.conjunctive:
                return await _probe(run, params, walked, last_dl, longest, limit)
            return await _or_probe(run, params, window, last_dl, longest, limit, target, idfs)
        return [tuple(r) for r in await run(_ALL_SQL, order)]


async def _term_classes(
    conn: AsyncConnection, parsed: ParsedQuery, order: Order
) -> list[int] | None:
    """The sets of scored terms a matching row can hold, as bit masks over ``parsed.terms``,
    for an ``or`` query of at most `MAX_CLASS_TERMS` of them in ranking order (else None).

    A row holding exactly the terms ``S`` (of the scored ones) can only match if the vector of
    ``S`` satisfies `ParsedQuery.relaxed` (``querytree``, which every match satisfies, with
    phrases read as AND: a vector without positions matches no phrase). None when the empty
    set passes (then rows without any scored term could match): the caller takes the
    threshold walk.
    """
    if order != "rank" or parsed.conjunctive or not 0 < len(parsed.terms) <= MAX_CLASS_TERMS:
        return None
    if not parsed.relaxed:
        return None
    masks = list(range(1 << len(parsed.terms)))
    rows = await conn.execute(
        text(_CLASSES_SQL), {"masks": masks, "terms": list(parsed.terms), "tsq": parsed.relaxed}
    )
    found = [int(r[0]) for r in rows]
    return None if 0 in found else found


def _class_sum(idfs: Sequence[float], mask: int) -> float:
    """The term sum of every row of the class, added as `score_sql` adds it (absent: + 0)."""
    return sum((w if mask >> i & 1 else 0.0 for i, w in enumerate(idfs)), 0.0)


def _beats(best: Sequence[tuple[Any, ...]], limit: int, bound: float) -> bool:
    """Whether the k-th best so far is strictly above ``bound`` (equal could lose a tie)."""
    return len(best) == limit and best[-1][5] > bound


async def _by_classes(
    conn: AsyncConnection,
    run: Callable[[str, Order], Awaitable[list[Any]]],
    params: dict[str, Any],
    parsed: ParsedQuery,
    idfs: Sequence[float],
    classes: Sequence[int],
    limit: int,
    target: _Target,
    stats: TermStatistics | None,
) -> list[tuple[Any, ...]]:
    """The best ``limit`` of an ``or`` query, by its term classes.

    Class ``S`` holds the matches whose present scored terms are exactly ``S``: they share one
    term sum, so within a class the ranking is the walk's order (length, newest). The classes
    split the matches, and a row of the true top ``limit`` is among its own class's first
    ``limit`` in that order (fewer than ``limit`` rows beat it at all). So it is enough to
    collect, for every class, its first ``limit`` rows, or all its rows that could still
    beat the k-th best collected:

    1. One walk of `SEARCH_SCAN` rows in ranking order scores every match it reads and notes
       its class (every match shorter than the last length read, ``last_dl``, is then known).
    2. From ``last_dl`` on, length by length, one GIN search (the length index) fetches, for
       every open class, its newest ``limit`` rows of that length. A class is closed once
       ``limit`` of its rows are collected (its first ``limit`` are then known: each length
       gave its newest), or once ``norm(length) * its sum`` cannot beat the k-th best so far
       (strictly: an equal row could be newer), since its rows not collected are that long.
    3. Classes without a row in `PROBE_EMPTY_LENGTHS` lengths look rare (``cooler`` with
       ``bad`` or ``beat``: no note holds them): one GIN search fetches all their rows up to
       the last length whose bound can still beat the k-th best; if there are at most
       `CLASS_FETCH`, they are closed, otherwise they are probed by length like the others.
       Classes the statistics say are not rare (more than `CLASS_FETCH` rows hold their terms,
       the terms taken as independent) are not fetched at all: ``cooler`` is common but only
       in long notes, and a fetch that stops at ``CLASS_FETCH`` rows is wasted work.
    """
    quoted = [params[f"t{i}"] for i in range(len(idfs))]
    sums = {mask: _class_sum(idfs, mask) for mask in classes}
    async with _settings(conn, {**_SERIAL, **_ONLY_WALK}):
        rows = await run(_CLASS_WALK_SQL, "rank")
        if not rows or not rows[-1][9] or rows[-1][6] is None:
            return _best_first([r for r in rows if r[8]], limit)  # the walk read every row
        longest: int = (await run(_LONGEST_SQL, "rank"))[0][0]
    found = {r[0]: tuple(r[:6]) for r in rows if r[8]}
    members: dict[int, set[Any]] = {m: set() for m in classes}
    for r in rows:
        if r[8]:
            members.setdefault(r[7], set()).add(r[0])

    def worth(mask: int, d: int) -> bool:  # can a row of the class, d long, still make it?
        best = _best_first(list(found.values()), limit)
        return not _beats(best, limit, norm(d, target.avgdl) * sums[mask])

    d: int = rows[-1][6]
    empty = dict.fromkeys(classes, 0)
    fetchable = set(classes)
    open_ = [m for m in classes if len(members[m]) < limit and worth(m, d)]
    async with _settings(conn, {**_SERIAL, **_ONLY_BITMAP}):
        while open_ and d <= longest:
            rare = [m for m in open_ if empty[m] >= PROBE_EMPTY_LENGTHS and m in fetchable]
            if rare and stats is not None and stats.rows_holding(rare) > CLASS_FETCH:
                fetchable.difference_update(rare)  # not rare: it would stop at CLASS_FETCH
                rare = []
            if rare:
                to_dl = d
                while to_dl < longest and any(worth(m, to_dl + 1) for m in rare):
                    to_dl += 1
                params.update(
                    tsq=_union_tsquery(parsed.tsquery, quoted, rare, classes),
                    masks=rare,
                    from_dl=d,
                    to_dl=to_dl,
                    fetch=CLASS_FETCH + 1,
                )
                fetched = await run(_CLASS_FETCH_SQL, "rank")
                if len(fetched) <= CLASS_FETCH:
                    found.update((r[0], tuple(r[:6])) for r in fetched)
                    open_ = [m for m in open_ if m not in rare]
                    continue
                fetchable.difference_update(rare)
            params.update(
                tsq=_union_tsquery(parsed.tsquery, quoted, open_, classes), masks=open_, d=d
            )
            for r in await run(_CLASS_PROBE_SQL, "rank"):
                found[r[0]] = tuple(r[:6])
                members.setdefault(r[6], set()).add(r[0])
                empty[r[6]] = -1
            for m in open_:
                empty[m] += 1
            d += 1
            open_ = [m for m in open_ if len(members[m]) < limit and worth(m, d)]
    return _best_first(list(found.values()), limit)


def _union_tsquery(
    tsquery: str, quoted: Sequence[str], masks: Sequence[int], classes: Sequence[int]
) -> str:
    """The query restricted to rows holding all the terms of one of the classes ``masks``.

    Only the terms present: the absent ones (``!term``) would make the GIN search read their
    posting lists too (twice the time for ``cooler or bad beat``); the exact class is checked
    on the rows found (``mask = ANY(:masks)``). The restriction is written as small as it can
    be, since the GIN search evaluates it on every candidate (10.2 ms for the five classes of
    ``cooler or bad beat`` at one length, 5.7 ms for its two minimal ones, 4.0 ms without):

    - with every class still open it is left out: every match holds all the terms of its own
      class, so it adds nothing;
    - a class whose terms include all of another listed class's is left out: rows holding
      the larger set also hold the smaller one.
    """
    if set(masks) >= set(classes):
        return tsquery
    minimal = [m for m in masks if not any(o != m and o & m == o for o in masks)]
    union = " | ".join(
        "( " + " & ".join(q for i, q in enumerate(quoted) if m >> i & 1) + " )" for m in minimal
    )
    return f"( {tsquery} ) & ( {union} )"


async def _rank_walk(
    run: Callable[[str, Order], Awaitable[list[Any]]], limit: int
) -> tuple[list[tuple[Any, ...]], int | None]:
    """The conjunctive walk's matches, and the length where it was cut (None: they are final)."""
    rows = await run(_RANK_WALK_SQL, "rank")
    walked = [tuple(r[:6]) for r in rows if r[7]]
    if len(walked) == limit or not rows or not rows[-1][8]:
        return walked, None  # k found, or no :scan-th row: the walk read the whole table
    # None as well when the walk reached rows without a vector (last): it read all others.
    last_dl: int | None = rows[-1][6]
    return walked, last_dl


async def _probe(
    run: Callable[[str, Order], Awaitable[list[Any]]],
    params: dict[str, Any],
    walked: list[tuple[Any, ...]],
    last_dl: int,
    longest: int,
    limit: int,
) -> list[tuple[Any, ...]]:
    """The best ``limit`` of a conjunctive query whose walk found fewer, from the GIN indexes.

    The walk read every row shorter than ``last_dl`` (and some of that length), so its matches
    are all the matches shorter than that. From ``last_dl`` on, each length is one GIN search
    (its newest ``limit`` matches: with one term sum, those beat every other row of the
    length); once ``limit`` are collected, no longer row can beat them. After
    `PROBE_EMPTY_LENGTHS` lengths in a row without a match, one GIN search takes every match
    from the next length on, ranked in SQL by the same score. The union holds the true best
    ``limit``; `_best_first` orders it by score, then recency.
    """
    found: dict[Any, tuple[Any, ...]] = {r[0]: r for r in walked}
    collected, empty, d = 0, 0, last_dl
    while d <= longest and collected < limit:
        params["shortest"] = params["longest"] = d
        rows = await run(_PROBE_SQL, "rank")
        found.update((r[0], tuple(r)) for r in rows)
        collected += len(rows)
        empty = 0 if rows else empty + 1
        d += 1
        if empty >= PROBE_EMPTY_LENGTHS and d <= longest and collected < limit:
            params["from_dl"] = d
            found.update((r[0], tuple(r)) for r in await run(_REST_SQL, "rank"))
            break
    return _best_first(list(found.values()), limit)


async def _or_probe(
    run: Callable[[str, Order], Awaitable[list[Any]]],
    params: dict[str, Any],
    window: list[Any],
    last_dl: int,
    longest: int,
    limit: int,
    target: _Target,
    idfs: Sequence[float],
) -> list[tuple[Any, ...]]:
    """The best ``limit`` of an ``or`` query whose window did not settle them.

    The window read every row shorter than ``last_dl``. From there, each length is one GIN
    search keeping its best ``limit`` by score (a row outside them has ``limit`` rows of its
    length beating it). After length ``d``, every unread row is at least ``d + 1`` long, so it
    scores at most ``norm(d + 1) * sum(idfs)`` (float sums of fewer non-negative terms in the
    same order are not larger, and `norm` falls with the length): once the k-th best so far is
    strictly above that, the result is final (equal could lose a tie to a newer longer row).
    After `OR_PROBE_LENGTHS` lengths without that, one GIN search scores every remaining match.
    """
    params["from_dl"] = last_dl
    every_term = " && ".join(f"CAST(:t{i} AS tsquery)" for i in range(len(idfs)))
    together = (await run(_TOGETHER_SQL.replace("{every_term}", every_term), "rank"))[0][0]
    bound = _term_sum_bound(idfs, together=together)
    found = {r[0]: tuple(r[:6]) for r in window}
    for d in range(last_dl, min(longest, last_dl + OR_PROBE_LENGTHS - 1) + 1):
        params["d"] = d
        found.update((r[0], tuple(r)) for r in await run(_OR_PROBE_SQL, "rank"))
        best = _best_first(list(found.values()), limit)
        if d == longest or (len(best) == limit and best[-1][5] > norm(d + 1, target.avgdl) * bound):
            return best
    params["from_dl"] = last_dl + OR_PROBE_LENGTHS
    found.update((r[0], tuple(r)) for r in await run(_REST_SQL, "rank"))
    return _best_first(list(found.values()), limit)


def _term_sum_bound(idfs: Sequence[float], *, together: bool) -> float:
    """The largest term sum an unread row can have.

    ``sum(idfs)`` if some unread row holds every term; otherwise each lacks at least one, and
    its sum (fewer non-negative terms added in the same order) is at most the largest sum that
    leaves one term out. For ``cooler or bad beat`` no note holds all three words, and this
    bound lets the probe stop lengths earlier than ``sum(idfs)`` would.
    """
    if together or not idfs:
        return sum(idfs, 0.0)
    return max(sum((w for j, w in enumerate(idfs) if j != i), 0.0) for i in range(len(idfs)))


def _threshold_reached(
    walked: Sequence[Any], limit: int, target: _Target, idfs: Sequence[float]
) -> list[tuple[Any, ...]] | None:
    """The best ``limit`` of a window in ranking order if no unread row can beat them, else None.

    Rows not read yet are at least as long as the last row read (``last_dl``), so none scores
    above ``norm(last_dl) * sum(idfs)``. If the k-th best read so far scores above that, or
    equal to it with the last length (an unread row of that length is older, and loses the
    tie), the result is final. A window of fewer than :scan rows read the whole table.
    """
    if not walked:
        return None
    scanned, last_dl = walked[0][-2], walked[0][-1]
    rows = _best_first(walked, limit)
    if scanned < SEARCH_SCAN:
        return rows  # the whole table was read
    if len(rows) < limit or last_dl is None:
        return None
    dls = {r[0]: r[6] for r in walked}
    bound = norm(last_dl, target.avgdl) * sum(idfs, 0.0)
    kth = rows[-1]
    if kth[5] > bound or (kth[5] == bound and dls[kth[0]] == last_dl):
        return rows
    return None


async def search(
    session: AsyncSession,
    target: _Target,
    q: str,
    *,
    limit: int,
    order: Order,
    include_deleted: bool,
) -> list[tuple[Any, ...]]:
    if not 1 <= limit <= MAX_RESULTS:
        raise ValueError(f"limit must be between 1 and {MAX_RESULTS}, got {limit}")
    if order not in ("rank", "newest"):
        raise ValueError(f"order must be 'rank' or 'newest', got {order!r}")
    conn = await session.connection()
    parsed = await parse_query(conn, q)
    if parsed is None:
        return []
    return await top_matches(
        conn, target, parsed, limit=limit, order=order, include_deleted=include_deleted
    )


@timed("queries.search_video_files")
async def search_video_files(
    session: AsyncSession,
    q: str,
    *,
    limit: int = 20,
    order: Order = "rank",
    include_deleted: bool = False,
) -> list[VideoFileHit]:
    """Video files whose display title matches ``q``, best first (as `search_hand_clips`).

    Walks ``ix_video_files_title_rank``; rare words go to ``ix_video_files_title_gin``.
    """
    rows = await search(
        session, _VIDEOS, q, limit=limit, order=order, include_deleted=include_deleted
    )
    return [VideoFileHit(*row) for row in rows]


@timed("queries.search_hand_clips")
async def search_hand_clips(
    session: AsyncSession,
    q: str,
    *,
    limit: int = 20,
    order: Order = "rank",
    include_deleted: bool = False,
) -> list[HandClipHit]:
    """Hand clips whose notes match ``q`` (web-search syntax), the best ``limit`` first.

    ``q`` is read by ``websearch_to_tsquery('english', q)``: words are stemmed ("calling"
    finds "calls"), ``"quoted words"`` must be adjacent, ``or`` gives alternatives, ``-word``
    excludes. Stray quotes, operators and punctuation are read leniently; input PostgreSQL
    cannot read at all, only stop words, or nothing gives ``[]``. Longer than
    `MAX_QUERY_CHARS` raises ValueError.

    The result is the exact top ``limit`` over all matches by the BM25 score of the module
    doc (``rank``), ties to the newer clip; ``order="newest"`` gives the newest matches
    instead, still with their scores. Walks ``ix_hand_clips_notes_rank``; rare words go to
    ``ix_hand_clips_notes_gin``.
    """
    rows = await search(
        session, _CLIPS, q, limit=limit, order=order, include_deleted=include_deleted
    )
    return [HandClipHit(*row) for row in rows]
