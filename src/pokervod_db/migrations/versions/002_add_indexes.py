"""002 add indexes: the PRD's index strategy, unique natural keys and every foreign-key column.

The two full-text indexes (ix_video_files_title_gin, ix_hand_clips_notes_gin) index the stored
generated tsvector columns that 001 created from the PRD's expressions.

Revision ID: 002_add_indexes
Revises: 001_initial_schema
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "002_add_indexes"
down_revision: str | Sequence[str] | None = "001_initial_schema"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_google_sheet_sync_sheet_id_entity_type",
        "google_sheet_sync",
        ["sheet_id", "entity_type"],
        unique=True,
        schema="pokervod",
    )
    op.create_index(
        "ix_nas_folders_folder_path", "nas_folders", ["folder_path"], unique=True, schema="pokervod"
    )
    op.create_index("ix_players_name", "players", ["name"], unique=True, schema="pokervod")
    op.create_index("ix_projects_code", "projects", ["code"], unique=True, schema="pokervod")
    op.create_index(
        "ix_tags_category_name", "tags", ["category", "name"], unique=True, schema="pokervod"
    )
    op.create_index(
        "ix_seasons_project_year",
        "seasons",
        ["project_id", "year"],
        unique=False,
        schema="pokervod",
    )
    op.create_index(
        "ix_events_season_number",
        "events",
        ["season_id", "event_number"],
        unique=False,
        schema="pokervod",
    )
    op.create_index(
        "ix_episodes_event_id", "episodes", ["event_id"], unique=False, schema="pokervod"
    )
    op.create_index(
        "ix_video_files_episode_id", "video_files", ["episode_id"], unique=False, schema="pokervod"
    )
    op.create_index(
        "ix_video_files_file_path", "video_files", ["file_path"], unique=True, schema="pokervod"
    )
    op.create_index(
        "ix_video_files_title_gin",
        "video_files",
        ["title_tsv"],
        unique=False,
        schema="pokervod",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_hand_clips_episode_id", "hand_clips", ["episode_id"], unique=False, schema="pokervod"
    )
    op.create_index(
        "ix_hand_clips_notes_gin",
        "hand_clips",
        ["notes_tsv"],
        unique=False,
        schema="pokervod",
        postgresql_using="gin",
    )
    op.create_index(
        "ix_hand_clips_sheet_source_row",
        "hand_clips",
        ["sheet_source", "sheet_row_number"],
        unique=True,
        schema="pokervod",
    )
    op.create_index(
        "ix_hand_clips_video_file_id",
        "hand_clips",
        ["video_file_id"],
        unique=False,
        schema="pokervod",
    )
    op.create_index(
        "ix_nas_files_file_path", "nas_files", ["file_path"], unique=True, schema="pokervod"
    )
    op.create_index(
        "ix_nas_files_folder_id", "nas_files", ["folder_id"], unique=False, schema="pokervod"
    )
    op.create_index(
        "ix_nas_files_video_file_id", "nas_files", ["video_file_id"], unique=True, schema="pokervod"
    )
    op.create_index(
        "ix_hand_clip_players_player_id",
        "hand_clip_players",
        ["player_id"],
        unique=False,
        schema="pokervod",
    )
    op.create_index(
        "ix_hand_clip_tags_tag_id", "hand_clip_tags", ["tag_id"], unique=False, schema="pokervod"
    )


def downgrade() -> None:
    op.drop_index("ix_hand_clip_tags_tag_id", table_name="hand_clip_tags", schema="pokervod")
    op.drop_index(
        "ix_hand_clip_players_player_id", table_name="hand_clip_players", schema="pokervod"
    )
    op.drop_index("ix_nas_files_video_file_id", table_name="nas_files", schema="pokervod")
    op.drop_index("ix_nas_files_folder_id", table_name="nas_files", schema="pokervod")
    op.drop_index("ix_nas_files_file_path", table_name="nas_files", schema="pokervod")
    op.drop_index("ix_hand_clips_video_file_id", table_name="hand_clips", schema="pokervod")
    op.drop_index("ix_hand_clips_sheet_source_row", table_name="hand_clips", schema="pokervod")
    op.drop_index(
        "ix_hand_clips_notes_gin",
        table_name="hand_clips",
        schema="pokervod",
        postgresql_using="gin",
    )
    op.drop_index("ix_hand_clips_episode_id", table_name="hand_clips", schema="pokervod")
    op.drop_index(
        "ix_video_files_title_gin",
        table_name="video_files",
        schema="pokervod",
        postgresql_using="gin",
    )
    op.drop_index("ix_video_files_file_path", table_name="video_files", schema="pokervod")
    op.drop_index("ix_video_files_episode_id", table_name="video_files", schema="pokervod")
    op.drop_index("ix_episodes_event_id", table_name="episodes", schema="pokervod")
    op.drop_index("ix_events_season_number", table_name="events", schema="pokervod")
    op.drop_index("ix_seasons_project_year", table_name="seasons", schema="pokervod")
    op.drop_index("ix_tags_category_name", table_name="tags", schema="pokervod")
    op.drop_index("ix_projects_code", table_name="projects", schema="pokervod")
    op.drop_index("ix_players_name", table_name="players", schema="pokervod")
    op.drop_index("ix_nas_folders_folder_path", table_name="nas_folders", schema="pokervod")
    op.drop_index(
        "ix_google_sheet_sync_sheet_id_entity_type",
        table_name="google_sheet_sync",
        schema="pokervod",
    )
