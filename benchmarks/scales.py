"""The data volumes of each benchmark scale (default = the archive's real size)."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Scale:
    """How many rows of each kind the generated archive holds, and how hard to measure it."""

    name: str
    projects: int
    seasons: int
    events: int
    episodes: int
    video_files: int
    nas_folders: int
    nas_files: int
    tags: int
    players: int
    hand_clips: int
    tag_links: int
    player_links: int
    runs: int
    """Timed runs of each read query (the percentiles are taken over these)."""
    fresh_rows: int
    """Fresh NAS-file rows for the upsert-vs-COPY comparison."""
    orm_rows: int
    """Rows for the ORM ``add_all`` comparison (slow: kept small)."""

    def counts(self) -> dict[str, int]:
        data = asdict(self)
        for key in ("name", "runs", "fresh_rows", "orm_rows"):
            data.pop(key)
        return data

    def check(self) -> None:
        """The generator assumes each level has at least as many rows as the one above."""
        chain = [self.projects, self.seasons, self.events, self.episodes, self.video_files]
        if any(a > b for a, b in itertools.pairwise(chain)):
            raise ValueError(f"scale {self.name}: the catalog levels must not shrink downwards")
        if self.nas_files < self.video_files:
            raise ValueError(f"scale {self.name}: every video file needs a NAS file")
        if self.hand_clips < self.video_files:
            raise ValueError(f"scale {self.name}: at least one hand clip per video file")
        if self.tag_links % self.hand_clips or self.player_links % self.hand_clips:
            raise ValueError(f"scale {self.name}: links must be a whole number per clip")
        if self.tag_links // self.hand_clips > self.tags:
            raise ValueError(f"scale {self.name}: more tags per clip than tags")
        if self.player_links // self.hand_clips > self.players:
            raise ValueError(f"scale {self.name}: more players per clip than players")


SCALES = {
    "default": Scale(
        name="default",
        projects=10,
        seasons=200,
        events=5_000,
        episodes=50_000,
        video_files=500_000,
        nas_folders=50_000,
        nas_files=1_000_000,
        tags=200,
        players=20_000,
        hand_clips=1_000_000,
        tag_links=3_000_000,
        player_links=2_000_000,
        runs=1_000,
        fresh_rows=200_000,
        orm_rows=10_000,
    ),
    "small": Scale(
        name="small",
        projects=10,
        seasons=50,
        events=500,
        episodes=5_000,
        video_files=50_000,
        nas_folders=5_000,
        nas_files=100_000,
        tags=200,
        players=2_000,
        hand_clips=100_000,
        tag_links=300_000,
        player_links=200_000,
        runs=1_000,
        fresh_rows=50_000,
        orm_rows=2_000,
    ),
    "tiny": Scale(
        name="tiny",
        projects=2,
        seasons=4,
        events=10,
        episodes=40,
        video_files=200,
        nas_folders=40,
        nas_files=400,
        tags=20,
        players=50,
        hand_clips=400,
        tag_links=1_200,
        player_links=800,
        runs=20,
        fresh_rows=500,
        orm_rows=50,
    ),
}
