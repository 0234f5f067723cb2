"""004 query indexes: the indexes the read side (`pokervod_db.queries`) needs at archive scale.

- ``ix_video_files_created_at``, ``ix_hand_clips_created_at`` on (created_at, id) INCLUDE
  (deleted_at): newest-first lists and keyset pagination find a page's keys in the index alone
  (index-only, the live filter included) instead of sorting or visiting the table.
- ``ix_hand_clips_deleted``: a partial index of the (few) soft-deleted clips, so counting a
  tag's live clips subtracts them by an index-only merge anti-join instead of visiting every
  clip of the tag.
- ``ix_hand_clip_tags_tag_id`` / ``ix_hand_clip_players_player_id`` gain hand_clip_id as a
  second column: a tag's (player's) clip ids then come from the index alone, in id order.
- ``fillfactor = 90`` on nas_files and video_files: a NAS rescan rewrites sizes and times
  (no indexed column), so with room left on the page the new row version is a HOT update and
  none of the table's indexes is touched. Applies to pages written from now on.

Revision ID: 004_query_indexes
Revises: 003_agent_events
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "004_query_indexes"
down_revision: str | Sequence[str] | None = "003_agent_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "pokervod"


HOT_TABLES = ("nas_files", "video_files")


def upgrade() -> None:
    for table in HOT_TABLES:
        op.execute(f"ALTER TABLE {SCHEMA}.{table} SET (fillfactor = 90)")
    op.create_index(
        "ix_video_files_created_at",
        "video_files",
        ["created_at", "id"],
        schema=SCHEMA,
        postgresql_include=["deleted_at"],
    )
    op.create_index(
        "ix_hand_clips_created_at",
        "hand_clips",
        ["created_at", "id"],
        schema=SCHEMA,
        postgresql_include=["deleted_at"],
    )
    op.create_index(
        "ix_hand_clips_deleted",
        "hand_clips",
        ["id"],
        schema=SCHEMA,
        postgresql_where=sa.text("deleted_at IS NOT NULL"),
    )
    op.drop_index("ix_hand_clip_tags_tag_id", table_name="hand_clip_tags", schema=SCHEMA)
    op.create_index(
        "ix_hand_clip_tags_tag_id", "hand_clip_tags", ["tag_id", "hand_clip_id"], schema=SCHEMA
    )
    op.drop_index("ix_hand_clip_players_player_id", table_name="hand_clip_players", schema=SCHEMA)
    op.create_index(
        "ix_hand_clip_players_player_id",
        "hand_clip_players",
        ["player_id", "hand_clip_id"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in HOT_TABLES:
        op.execute(f"ALTER TABLE {SCHEMA}.{table} RESET (fillfactor)")
    op.drop_index("ix_hand_clip_players_player_id", table_name="hand_clip_players", schema=SCHEMA)
    op.create_index(
        "ix_hand_clip_players_player_id", "hand_clip_players", ["player_id"], schema=SCHEMA
    )
    op.drop_index("ix_hand_clip_tags_tag_id", table_name="hand_clip_tags", schema=SCHEMA)
    op.create_index("ix_hand_clip_tags_tag_id", "hand_clip_tags", ["tag_id"], schema=SCHEMA)
    op.drop_index("ix_hand_clips_deleted", table_name="hand_clips", schema=SCHEMA)
    op.drop_index("ix_hand_clips_created_at", table_name="hand_clips", schema=SCHEMA)
    op.drop_index("ix_video_files_created_at", table_name="video_files", schema=SCHEMA)
