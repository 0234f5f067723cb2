"""007 catalog versions: a version per project that changes with every write to its tree.

``catalog_versions(project_id, version)`` holds, per project, a random uuid that statement-level
triggers on projects, seasons, events and episodes replace whenever a statement touches that
project's tree (insert, update, delete; ``TRUNCATE`` replaces every version). Readers of the
tree (``pokervod_db.treecache``) keep the built tree with the version it was built at and read
one indexed row per request to know whether it still holds, so the tree of a project with
thousands of episodes is not read and rebuilt on every request.

- The triggers map rows to projects through their transition tables (episode → event → season
  → project); an update that moves a row to another project's parent changes both projects.
- The version is written by the writing transaction: that transaction sees its own new version
  at once (read-your-writes); others see it with the commit, together with the rows.
- Random uuids, not counters: a rebuilt or restored database never hands out again a version
  that a running process has cached for other rows.
- Version rows are locked in ``project_id`` order, so two statements touching the same projects
  queue instead of deadlocking. A writer holds its projects' rows until it commits: concurrent
  writers to one project's tree take turns (the write cost is in docs/performance.md).

A new project gets its row from the trigger on projects; a deleted one loses it by the foreign
key's cascade. Rows for the projects that exist are written here, after the triggers exist, in
the same transaction (``CREATE TRIGGER`` locks the four tables against writes until the commit,
so no write slips between the backfill and the triggers).

Revision ID: 007_catalog_versions
Revises: 006_search_rank_indexes
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "007_catalog_versions"
down_revision: str | Sequence[str] | None = "006_search_rank_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The foreign key is on a table created in this revision (nothing to validate, nobody to block).
_LINT_EXCEPTION = "-- squawk-ignore-file adding-foreign-key-constraint"

# The projects of a statement's rows, by level ({rows}: the transition table). Each level gets
# one trigger per event, since a trigger with transition tables may have only one event. The
# parents are looked up by ``= ANY(ARRAY(…))``: a primary-key probe per distinct parent, where
# an ``IN (SELECT …)`` over a transition table (no statistics) may be planned as a hash join
# that reads every event of the archive, for a single-row write.
_PROJECTS_OF = {
    "seasons": "SELECT project_id FROM {rows}",
    "events": (
        "SELECT s.project_id FROM pokervod.seasons s"
        " WHERE s.id = ANY(ARRAY(SELECT DISTINCT season_id FROM {rows}))"
    ),
    "episodes": (
        "SELECT s.project_id FROM pokervod.events e JOIN pokervod.seasons s ON s.id = e.season_id"
        " WHERE e.id = ANY(ARRAY(SELECT DISTINCT event_id FROM {rows}))"
    ),
}


def _level_function(table: str) -> str:
    of = _PROJECTS_OF[table]
    return f"""
    CREATE FUNCTION pokervod.catalog_versions_{table}() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM pokervod.catalog_versions_touch(ARRAY({of.format(rows="new_rows")}));
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM pokervod.catalog_versions_touch(ARRAY({of.format(rows="old_rows")}));
        ELSE
            PERFORM pokervod.catalog_versions_touch(ARRAY(
                {of.format(rows="new_rows")} UNION {of.format(rows="old_rows")}));
        END IF;
        RETURN NULL;
    END
    $$
    """


_UPGRADE = [
    """
    CREATE TABLE pokervod.catalog_versions (
        project_id uuid NOT NULL,
        version uuid NOT NULL,
        CONSTRAINT pk_catalog_versions PRIMARY KEY (project_id),
        CONSTRAINT fk_catalog_versions_project_id_projects FOREIGN KEY (project_id)
            REFERENCES pokervod.projects (id) ON DELETE CASCADE
    )
    """,
    # A new random version for each of these projects that has a row. The rows are locked in
    # project_id order first (the sorted FOR UPDATE subquery), so writers touching several
    # projects lock them in the same order. A project without a row (deleted in the same
    # statement's cascade) is skipped: never an insert that its foreign key would refuse.
    """
    CREATE FUNCTION pokervod.catalog_versions_touch(touched uuid[]) RETURNS void
    LANGUAGE sql AS $$
        UPDATE pokervod.catalog_versions v SET version = gen_random_uuid()
        FROM (SELECT c.project_id FROM pokervod.catalog_versions c
              WHERE c.project_id = ANY(touched)
              ORDER BY c.project_id FOR UPDATE) t
        WHERE v.project_id = t.project_id
    $$
    """,
    """
    CREATE FUNCTION pokervod.catalog_versions_projects() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO pokervod.catalog_versions AS v (project_id, version)
            SELECT id, gen_random_uuid() FROM new_rows ORDER BY id
            ON CONFLICT (project_id) DO UPDATE SET version = excluded.version;
        ELSE
            PERFORM pokervod.catalog_versions_touch(ARRAY(
                SELECT id FROM new_rows UNION SELECT id FROM old_rows));
        END IF;
        RETURN NULL;
    END
    $$
    """,
    *(_level_function(t) for t in ("seasons", "events", "episodes")),
    """
    CREATE FUNCTION pokervod.catalog_versions_truncate() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pokervod.catalog_versions_touch(ARRAY(
            SELECT project_id FROM pokervod.catalog_versions));
        RETURN NULL;
    END
    $$
    """,
    # projects: a delete needs nothing (the foreign key's cascade removes the row).
    """
    CREATE TRIGGER catalog_versions_insert AFTER INSERT ON pokervod.projects
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pokervod.catalog_versions_projects()
    """,
    """
    CREATE TRIGGER catalog_versions_update AFTER UPDATE ON pokervod.projects
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pokervod.catalog_versions_projects()
    """,
    *(
        sql.format(table=table)
        for table in ("seasons", "events", "episodes")
        for sql in (
            """
            CREATE TRIGGER catalog_versions_insert AFTER INSERT ON pokervod.{table}
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION pokervod.catalog_versions_{table}()
            """,
            """
            CREATE TRIGGER catalog_versions_update AFTER UPDATE ON pokervod.{table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION pokervod.catalog_versions_{table}()
            """,
            """
            CREATE TRIGGER catalog_versions_delete AFTER DELETE ON pokervod.{table}
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION pokervod.catalog_versions_{table}()
            """,
            """
            CREATE TRIGGER catalog_versions_truncate AFTER TRUNCATE ON pokervod.{table}
            FOR EACH STATEMENT EXECUTE FUNCTION pokervod.catalog_versions_truncate()
            """,
        )
    ),
    """
    INSERT INTO pokervod.catalog_versions (project_id, version)
    SELECT id, gen_random_uuid() FROM pokervod.projects ORDER BY id
    ON CONFLICT (project_id) DO NOTHING
    """,
]

_DOWNGRADE = [
    *(
        f"DROP TRIGGER catalog_versions_{event} ON pokervod.{table}"
        for table in ("seasons", "events", "episodes")
        for event in ("insert", "update", "delete", "truncate")
    ),
    "DROP TRIGGER catalog_versions_update ON pokervod.projects",
    "DROP TRIGGER catalog_versions_insert ON pokervod.projects",
    "DROP FUNCTION pokervod.catalog_versions_truncate()",
    "DROP FUNCTION pokervod.catalog_versions_episodes()",
    "DROP FUNCTION pokervod.catalog_versions_events()",
    "DROP FUNCTION pokervod.catalog_versions_seasons()",
    "DROP FUNCTION pokervod.catalog_versions_projects()",
    "DROP FUNCTION pokervod.catalog_versions_touch(uuid[])",
    "DROP TABLE pokervod.catalog_versions",
]


def upgrade() -> None:
    if op.get_context().as_sql:
        op.execute(_LINT_EXCEPTION + "\nSELECT 1")  # offline SQL only: keeps the comment whole
    for sql in _UPGRADE:
        op.execute(sql)


def downgrade() -> None:
    for sql in _DOWNGRADE:
        op.execute(sql)
