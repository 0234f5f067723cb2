"""005 tag link created_at: a tag's clips newest first and its clip count without a scan.

- ``hand_clip_tags.clip_created_at`` / ``clip_deleted_at``: copies of the clip's
  ``created_at`` / ``deleted_at`` on each of its tag links, kept by triggers (a BEFORE INSERT
  trigger on the link reads the clip; an AFTER UPDATE trigger on hand_clips rewrites its links
  when either value changes). With ``ix_hand_clip_tags_tag_created`` on (tag_id,
  clip_created_at, hand_clip_id) INCLUDE (clip_deleted_at), a page of a tag's live clips,
  newest first, is one backward index-only range scan that stops after the page, whatever the
  size of the tag (before: a semi-join probing the tag's links for each clip of the newest-first
  walk). The index replaces ``ix_hand_clip_tags_tag_clip`` (same leading column: the foreign
  key keeps its index, the link table keeps two indexes).
- ``tag_clip_counts``: per tag, the number of linked clips and of live ones, maintained by
  statement-level triggers on the link table (one grouped upsert per statement, from its
  transition tables), so counting the biggest tag's clips reads one row instead of 150,000
  index entries.

Write cost (measured by the benchmark's ingest figures, "hand_clip_tags (replace)"): each link
insert reads its clip (primary key, ``FOR SHARE`` so a concurrent soft delete of the clip
cannot slip between the read and the insert) and every link statement upserts one counter
row per tag it touches; a soft delete or restore of a clip rewrites its (about three) links.
Counter rows are locked in tag order, so concurrent link writers queue per tag instead of
deadlocking. ``TRUNCATE`` of the link table bypasses the counters (none of our code does it).

Revision ID: 005_tag_link_created_at
Revises: 004_query_indexes
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "005_tag_link_created_at"
down_revision: str | Sequence[str] | None = "004_query_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Built in the migration's transaction for the reasons given in 004; the columns are filled
# from hand_clips before NOT NULL is set, in the same transaction, so no reader sees them empty.
_LINT_EXCEPTION = (
    "-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion, "
    "adding-not-nullable-field, adding-required-field, adding-foreign-key-constraint"
)

_UPGRADE = [
    """
    ALTER TABLE pokervod.hand_clip_tags
        ADD COLUMN clip_created_at timestamp with time zone,
        ADD COLUMN clip_deleted_at timestamp with time zone
    """,
    """
    UPDATE pokervod.hand_clip_tags l
    SET clip_created_at = c.created_at, clip_deleted_at = c.deleted_at
    FROM pokervod.hand_clips c
    WHERE c.id = l.hand_clip_id
    """,
    "ALTER TABLE pokervod.hand_clip_tags ALTER COLUMN clip_created_at SET NOT NULL",
    """
    CREATE INDEX ix_hand_clip_tags_tag_created ON pokervod.hand_clip_tags
        (tag_id, clip_created_at, hand_clip_id) INCLUDE (clip_deleted_at)
    """,
    "DROP INDEX pokervod.ix_hand_clip_tags_tag_clip",
    """
    CREATE TABLE pokervod.tag_clip_counts (
        tag_id uuid NOT NULL,
        clips bigint DEFAULT 0 NOT NULL,
        live_clips bigint DEFAULT 0 NOT NULL,
        CONSTRAINT pk_tag_clip_counts PRIMARY KEY (tag_id),
        CONSTRAINT fk_tag_clip_counts_tag_id_tags FOREIGN KEY (tag_id)
            REFERENCES pokervod.tags (id) ON DELETE CASCADE
    )
    """,
    """
    INSERT INTO pokervod.tag_clip_counts (tag_id, clips, live_clips)
    SELECT tag_id, count(*), count(*) FILTER (WHERE clip_deleted_at IS NULL)
    FROM pokervod.hand_clip_tags
    GROUP BY tag_id
    """,
    # The clip's values onto a new link. A missing clip leaves a placeholder: the foreign key
    # check that follows then reports the real error (a NOT NULL error would hide it).
    """
    CREATE FUNCTION pokervod.hand_clip_tags_copy_clip() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        SELECT c.created_at, c.deleted_at INTO NEW.clip_created_at, NEW.clip_deleted_at
        FROM pokervod.hand_clips c WHERE c.id = NEW.hand_clip_id
        FOR SHARE;
        IF NOT FOUND THEN
            NEW.clip_created_at := '-infinity';
        END IF;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER hand_clip_tags_copy_clip
    BEFORE INSERT OR UPDATE OF hand_clip_id ON pokervod.hand_clip_tags
    FOR EACH ROW EXECUTE FUNCTION pokervod.hand_clip_tags_copy_clip()
    """,
    """
    CREATE FUNCTION pokervod.hand_clips_to_tag_links() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE pokervod.hand_clip_tags
        SET clip_created_at = NEW.created_at, clip_deleted_at = NEW.deleted_at
        WHERE hand_clip_id = NEW.id;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER hand_clips_to_tag_links
    AFTER UPDATE OF created_at, deleted_at ON pokervod.hand_clips
    FOR EACH ROW
    WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION pokervod.hand_clips_to_tag_links()
    """,
    # One function for the three statement triggers (a trigger with transition tables may have
    # only one event). ORDER BY tag_id: counter rows are locked in one order by every writer.
    """
    CREATE FUNCTION pokervod.tag_clip_counts_apply() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO pokervod.tag_clip_counts AS t (tag_id, clips, live_clips)
            SELECT tag_id, count(*), count(*) FILTER (WHERE clip_deleted_at IS NULL)
            FROM new_links GROUP BY tag_id ORDER BY tag_id
            ON CONFLICT (tag_id) DO UPDATE
            SET clips = t.clips + excluded.clips, live_clips = t.live_clips + excluded.live_clips;
        ELSIF TG_OP = 'DELETE' THEN
            UPDATE pokervod.tag_clip_counts t
            SET clips = t.clips - d.clips, live_clips = t.live_clips - d.live_clips
            FROM (SELECT tag_id, count(*) AS clips,
                         count(*) FILTER (WHERE clip_deleted_at IS NULL) AS live_clips
                  FROM old_links GROUP BY tag_id ORDER BY tag_id) d
            WHERE t.tag_id = d.tag_id;
        ELSE
            INSERT INTO pokervod.tag_clip_counts AS t (tag_id, clips, live_clips)
            SELECT tag_id, sum(n), sum(live) FROM (
                SELECT tag_id, 1 AS n, (clip_deleted_at IS NULL)::int AS live FROM new_links
                UNION ALL
                SELECT tag_id, -1, -(clip_deleted_at IS NULL)::int FROM old_links
            ) d
            GROUP BY tag_id HAVING sum(n) <> 0 OR sum(live) <> 0 ORDER BY tag_id
            ON CONFLICT (tag_id) DO UPDATE
            SET clips = t.clips + excluded.clips, live_clips = t.live_clips + excluded.live_clips;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER tag_clip_counts_insert AFTER INSERT ON pokervod.hand_clip_tags
    REFERENCING NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION pokervod.tag_clip_counts_apply()
    """,
    """
    CREATE TRIGGER tag_clip_counts_delete AFTER DELETE ON pokervod.hand_clip_tags
    REFERENCING OLD TABLE AS old_links
    FOR EACH STATEMENT EXECUTE FUNCTION pokervod.tag_clip_counts_apply()
    """,
    """
    CREATE TRIGGER tag_clip_counts_update AFTER UPDATE ON pokervod.hand_clip_tags
    REFERENCING OLD TABLE AS old_links NEW TABLE AS new_links
    FOR EACH STATEMENT EXECUTE FUNCTION pokervod.tag_clip_counts_apply()
    """,
]

_DOWNGRADE = [
    "DROP TRIGGER tag_clip_counts_update ON pokervod.hand_clip_tags",
    "DROP TRIGGER tag_clip_counts_delete ON pokervod.hand_clip_tags",
    "DROP TRIGGER tag_clip_counts_insert ON pokervod.hand_clip_tags",
    "DROP FUNCTION pokervod.tag_clip_counts_apply()",
    "DROP TRIGGER hand_clips_to_tag_links ON pokervod.hand_clips",
    "DROP FUNCTION pokervod.hand_clips_to_tag_links()",
    "DROP TRIGGER hand_clip_tags_copy_clip ON pokervod.hand_clip_tags",
    "DROP FUNCTION pokervod.hand_clip_tags_copy_clip()",
    "DROP TABLE pokervod.tag_clip_counts",
    "CREATE INDEX ix_hand_clip_tags_tag_clip ON pokervod.hand_clip_tags (tag_id, hand_clip_id)",
    "DROP INDEX pokervod.ix_hand_clip_tags_tag_created",
    """
    ALTER TABLE pokervod.hand_clip_tags
        DROP COLUMN clip_created_at, DROP COLUMN clip_deleted_at
    """,
]


def upgrade() -> None:
    if op.get_context().as_sql:
        op.execute(_LINT_EXCEPTION + "\nSELECT 1")  # offline SQL only: keeps the comment whole
    for sql in _UPGRADE:
        op.execute(sql)


def downgrade() -> None:
    if op.get_context().as_sql:
        op.execute(_LINT_EXCEPTION + "\nSELECT 1")  # offline SQL only: keeps the comment whole
    for sql in _DOWNGRADE:
        op.execute(sql)
