"""006 search rank indexes: walk the documents in ranking order, shortest first.

Search ranks by BM25 with binary term frequency (see ``pokervod_db.search``): for a query
whose words must all be present, every match gets the same term sum, so the ranking is the
document length (distinct lexemes, ``length(tsvector)``), shortest first, newest first among
equal lengths. These two B-trees hold exactly that order, so the best ``k`` matches are the
first ``k`` matches of an index walk that stops early, whatever the number of matches:

- ``ix_hand_clips_notes_rank`` on hand_clips (length(notes_tsv), created_at DESC, id DESC)
- ``ix_video_files_title_rank`` on video_files (length(title_tsv), created_at DESC, id DESC)

When the shortest rows hold no match (a phrase found only in long notes), the walk would read
many rows for nothing. The two GIN indexes index each vector plus one extra lexeme naming its
length (``' 17'``: a space, which the parser never puts in a lexeme), so "the matches of length
17" is one GIN search, and the lengths can be probed in order:

- ``ix_hand_clips_notes_len_gin`` on hand_clips (notes_tsv || ' <length>')
- ``ix_video_files_title_len_gin`` on video_files (title_tsv || ' <length>')

They are plain indexes on the tables' own columns: every commit keeps them exact (no lag),
a restore that creates the schema from the migrations rebuilds them, and nothing needs to be
loaded. Built inside the migration's transaction, not ``CONCURRENTLY``, for the reason given in
004 (``_LINT_EXCEPTION``).

Revision ID: 006_search_rank_indexes
Revises: 005_tag_link_created_at
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "006_search_rank_indexes"
down_revision: str | Sequence[str] | None = "005_tag_link_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "pokervod"

NEW_INDEXES = {
    "ix_hand_clips_notes_rank": "hand_clips (length(notes_tsv), created_at DESC, id DESC)",
    "ix_video_files_title_rank": "video_files (length(title_tsv), created_at DESC, id DESC)",
    "ix_hand_clips_notes_len_gin": (
        "hand_clips USING gin ((notes_tsv || array_to_tsvector(ARRAY[' ' || COALESCE(length(notes_tsv), 0)::text])))"
    ),
    "ix_video_files_title_len_gin": (
        "video_files USING gin ((title_tsv || array_to_tsvector(ARRAY[' ' || COALESCE(length(title_tsv), 0)::text])))"
    ),
}

_LINT_EXCEPTION = (
    "-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion"
)


def upgrade() -> None:
    if op.get_context().as_sql:
        op.execute(_LINT_EXCEPTION + "\nSELECT 1")  # offline SQL only: keeps the comment whole
    for name, definition in NEW_INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON {SCHEMA}.{definition}")


def downgrade() -> None:
    if op.get_context().as_sql:
        op.execute(_LINT_EXCEPTION + "\nSELECT 1")  # offline SQL only: keeps the comment whole
    for name in NEW_INDEXES:
        op.execute(f"DROP INDEX {SCHEMA}.{name}")
