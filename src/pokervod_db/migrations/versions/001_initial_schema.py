"""001 initial schema: schema pokervod, the eleven tables, two link tables, keys, constraints.

Also the trigger function that keeps ``updated_at`` current on every UPDATE (ORM, plain SQL
or bulk), attached to every entity table. Indexes follow in 002_add_indexes.

Revision ID: 001_initial_schema
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "001_initial_schema"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTITY_TABLES = (
    "google_sheet_sync",
    "nas_folders",
    "players",
    "projects",
    "tags",
    "seasons",
    "events",
    "episodes",
    "video_files",
    "hand_clips",
    "nas_files",
)


def upgrade() -> None:
    op.create_table(
        "google_sheet_sync",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("sheet_id", sa.String(length=100), nullable=False),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("last_row_synced", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "sync_status", sa.String(length=20), server_default=sa.text("'idle'"), nullable=False
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "sync_status IN ('idle', 'syncing', 'completed', 'failed')",
            name=op.f("ck_google_sheet_sync_sync_status_valid"),
        ),
        sa.CheckConstraint(
            "last_row_synced >= 0", name=op.f("ck_google_sheet_sync_last_row_synced_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_google_sheet_sync")),
        schema="pokervod",
    )
    op.create_table(
        "nas_folders",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("folder_path", sa.String(length=1000), nullable=False),
        sa.Column("folder_name", sa.String(length=500), nullable=False),
        sa.Column("parent_path", sa.String(length=1000), nullable=True),
        sa.Column("depth", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("file_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("folder_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("total_size_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_empty", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "is_hidden_folder", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("depth >= 0", name=op.f("ck_nas_folders_depth_non_negative")),
        sa.CheckConstraint("file_count >= 0", name=op.f("ck_nas_folders_file_count_non_negative")),
        sa.CheckConstraint(
            "folder_count >= 0", name=op.f("ck_nas_folders_folder_count_non_negative")
        ),
        sa.CheckConstraint(
            "total_size_bytes >= 0", name=op.f("ck_nas_folders_total_size_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nas_folders")),
        schema="pokervod",
    )
    op.create_table(
        "players",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_display", sa.String(length=200), nullable=True),
        sa.Column("nationality", sa.String(length=100), nullable=True),
        sa.Column("hendon_mob_id", sa.String(length=50), nullable=True),
        sa.Column("total_live_earnings", sa.Numeric(precision=15, scale=2), nullable=True),
        sa.Column("wsop_bracelets", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "wsop_bracelets >= 0", name=op.f("ck_players_wsop_bracelets_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_players")),
        schema="pokervod",
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("nas_base_path", sa.String(length=500), nullable=True),
        sa.Column("filename_pattern", sa.String(length=500), nullable=True),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        schema="pokervod",
    )
    op.create_table(
        "tags",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("category", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("name_display", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("sort_order", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "category IN ('poker_play', 'emotion', 'epic_hand', 'runout', 'adjective')",
            name=op.f("ck_tags_category_valid"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        schema="pokervod",
    )
    op.create_table(
        "seasons",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("project_id", sa.UUID(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=True),
        sa.Column("sub_category", sa.String(length=50), nullable=True),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'active'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("year BETWEEN 1970 AND 2100", name=op.f("ck_seasons_year_range")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["pokervod.projects.id"],
            name=op.f("fk_seasons_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seasons")),
        schema="pokervod",
    )
    op.create_table(
        "events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("season_id", sa.UUID(), nullable=False),
        sa.Column("event_number", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("name_short", sa.String(length=100), nullable=True),
        sa.Column("event_type", sa.String(length=50), nullable=True),
        sa.Column("game_type", sa.String(length=50), nullable=True),
        sa.Column("buy_in", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("gtd_amount", sa.Numeric(precision=15, scale=2), nullable=True),
        sa.Column("venue", sa.String(length=200), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column(
            "status", sa.String(length=20), server_default=sa.text("'upcoming'"), nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("buy_in >= 0", name=op.f("ck_events_buy_in_non_negative")),
        sa.CheckConstraint("gtd_amount >= 0", name=op.f("ck_events_gtd_amount_non_negative")),
        sa.ForeignKeyConstraint(
            ["season_id"],
            ["pokervod.seasons.id"],
            name=op.f("fk_events_season_id_seasons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        schema="pokervod",
    )
    op.create_table(
        "episodes",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("episode_number", sa.Integer(), nullable=True),
        sa.Column("day_number", sa.Integer(), nullable=True),
        sa.Column("part_number", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("episode_type", sa.String(length=50), nullable=True),
        sa.Column("table_type", sa.String(length=50), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "episode_type IN ('full', 'highlight', 'recap', 'interview', 'subclip')",
            name=op.f("ck_episodes_episode_type_valid"),
        ),
        sa.CheckConstraint(
            "table_type IN ('preliminary', 'day1', 'day2', 'day3', 'final_table', 'heads_up')",
            name=op.f("ck_episodes_table_type_valid"),
        ),
        sa.CheckConstraint("duration_seconds >= 0", name=op.f("ck_episodes_duration_non_negative")),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["pokervod.events.id"],
            name=op.f("fk_episodes_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
        schema="pokervod",
    )
    op.create_table(
        "video_files",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("episode_id", sa.UUID(), nullable=True),
        sa.Column("file_path", sa.String(length=1000), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("file_format", sa.String(length=20), nullable=True),
        sa.Column("file_mtime", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column("video_codec", sa.String(length=50), nullable=True),
        sa.Column("audio_codec", sa.String(length=50), nullable=True),
        sa.Column("bitrate_kbps", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("version_type", sa.String(length=20), nullable=True),
        sa.Column("is_original", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("display_title", sa.String(length=500), nullable=True),
        sa.Column("content_type", sa.String(length=20), nullable=True),
        sa.Column("catalog_title", sa.String(length=300), nullable=True),
        sa.Column("is_catalog_item", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_hidden", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("hidden_reason", sa.String(length=50), nullable=True),
        sa.Column(
            "scan_status", sa.String(length=20), server_default=sa.text("'pending'"), nullable=False
        ),
        sa.Column(
            "title_tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, (display_title)::text)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "version_type IN ('clean', 'mastered', 'stream', 'subclip', 'final_edit', 'nobug', 'pgm', 'hires', 'generic')",
            name=op.f("ck_video_files_version_type_valid"),
        ),
        sa.CheckConstraint("bitrate_kbps >= 0", name=op.f("ck_video_files_bitrate_non_negative")),
        sa.CheckConstraint(
            "duration_seconds >= 0", name=op.f("ck_video_files_duration_non_negative")
        ),
        sa.CheckConstraint(
            "file_size_bytes >= 0", name=op.f("ck_video_files_file_size_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["pokervod.episodes.id"],
            name=op.f("fk_video_files_episode_id_episodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_video_files")),
        schema="pokervod",
    )
    op.create_table(
        "hand_clips",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("episode_id", sa.UUID(), nullable=True),
        sa.Column("video_file_id", sa.UUID(), nullable=True),
        sa.Column("sheet_source", sa.String(length=50), nullable=True),
        sa.Column("sheet_row_number", sa.Integer(), nullable=True),
        sa.Column("nas_folder_link", sa.String(length=1000), nullable=True),
        sa.Column("sheet_file_name", sa.String(length=500), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("timecode", sa.String(length=20), nullable=True),
        sa.Column("timecode_end", sa.String(length=20), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("hand_grade", sa.String(length=10), nullable=True),
        sa.Column("pot_size", sa.BigInteger(), nullable=True),
        sa.Column("winner_hand", sa.String(length=50), nullable=True),
        sa.Column("hands_involved", sa.String(length=100), nullable=True),
        sa.Column(
            "notes_tsv",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, notes)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "hand_grade IN ('★', '★★', '★★★')", name=op.f("ck_hand_clips_hand_grade_valid")
        ),
        sa.CheckConstraint(
            "duration_seconds >= 0", name=op.f("ck_hand_clips_duration_non_negative")
        ),
        sa.CheckConstraint("pot_size >= 0", name=op.f("ck_hand_clips_pot_size_non_negative")),
        sa.CheckConstraint(
            "sheet_row_number > 0", name=op.f("ck_hand_clips_sheet_row_number_positive")
        ),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["pokervod.episodes.id"],
            name=op.f("fk_hand_clips_episode_id_episodes"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["video_file_id"],
            ["pokervod.video_files.id"],
            name=op.f("fk_hand_clips_video_file_id_video_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hand_clips")),
        schema="pokervod",
    )
    op.create_table(
        "nas_files",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("file_path", sa.String(length=1000), nullable=False),
        sa.Column("file_name", sa.String(length=500), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("file_extension", sa.String(length=20), nullable=True),
        sa.Column("file_mtime", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "file_category", sa.String(length=20), server_default=sa.text("'other'"), nullable=False
        ),
        sa.Column("is_hidden_file", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("is_excluded", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("exclude_reason", sa.String(length=100), nullable=True),
        sa.Column("video_file_id", sa.UUID(), nullable=True),
        sa.Column("folder_id", sa.UUID(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "file_category IN ('video', 'metadata', 'system', 'archive', 'other')",
            name=op.f("ck_nas_files_file_category_valid"),
        ),
        sa.CheckConstraint(
            "file_size_bytes >= 0", name=op.f("ck_nas_files_file_size_non_negative")
        ),
        sa.ForeignKeyConstraint(
            ["folder_id"],
            ["pokervod.nas_folders.id"],
            name=op.f("fk_nas_files_folder_id_nas_folders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["video_file_id"],
            ["pokervod.video_files.id"],
            name=op.f("fk_nas_files_video_file_id_video_files"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nas_files")),
        schema="pokervod",
    )
    op.create_table(
        "hand_clip_players",
        sa.Column("hand_clip_id", sa.UUID(), nullable=False),
        sa.Column("player_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["hand_clip_id"],
            ["pokervod.hand_clips.id"],
            name=op.f("fk_hand_clip_players_hand_clip_id_hand_clips"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["player_id"],
            ["pokervod.players.id"],
            name=op.f("fk_hand_clip_players_player_id_players"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hand_clip_id", "player_id", name=op.f("pk_hand_clip_players")),
        schema="pokervod",
    )
    op.create_table(
        "hand_clip_tags",
        sa.Column("hand_clip_id", sa.UUID(), nullable=False),
        sa.Column("tag_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["hand_clip_id"],
            ["pokervod.hand_clips.id"],
            name=op.f("fk_hand_clip_tags_hand_clip_id_hand_clips"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"],
            ["pokervod.tags.id"],
            name=op.f("fk_hand_clip_tags_tag_id_tags"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hand_clip_id", "tag_id", name=op.f("pk_hand_clip_tags")),
        schema="pokervod",
    )

    op.execute(
        """
        CREATE OR REPLACE FUNCTION pokervod.set_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            -- statement_timestamp(): a row updated twice in one transaction still moves forward
            NEW.updated_at := statement_timestamp();
            RETURN NEW;
        END
        $$
        """
    )
    for table in ENTITY_TABLES:
        op.execute(
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON pokervod.{table} "
            "FOR EACH ROW EXECUTE FUNCTION pokervod.set_updated_at()"
        )


def downgrade() -> None:
    op.drop_table("hand_clip_tags", schema="pokervod")
    op.drop_table("hand_clip_players", schema="pokervod")
    op.drop_table("nas_files", schema="pokervod")
    op.drop_table("hand_clips", schema="pokervod")
    op.drop_table("video_files", schema="pokervod")
    op.drop_table("episodes", schema="pokervod")
    op.drop_table("events", schema="pokervod")
    op.drop_table("seasons", schema="pokervod")
    op.drop_table("tags", schema="pokervod")
    op.drop_table("projects", schema="pokervod")
    op.drop_table("players", schema="pokervod")
    op.drop_table("nas_folders", schema="pokervod")
    op.drop_table("google_sheet_sync", schema="pokervod")
    op.execute("DROP FUNCTION IF EXISTS pokervod.set_updated_at()")
    # The schema itself stays: it holds Alembic's version table.
