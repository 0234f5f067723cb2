"""Operations on the catalog that span several tables in one unit of work.

`create_catalog_tree` builds a project with its seasons and gives each season its own savepoint,
so one bad season is rolled back alone and reported while the rest is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db.errors import translate
from pokervod_db.models import Project, Season

log = logging.getLogger(__name__)

__all__ = ["CatalogTreeResult", "SeasonFailure", "create_catalog_tree"]


@dataclass
class SeasonFailure:
    """A season of a catalog tree that was rolled back to its savepoint."""

    index: int
    data: Mapping[str, Any]
    error: str


@dataclass
class CatalogTreeResult:
    project: Project
    seasons: list[Season] = field(default_factory=list)
    failed: list[SeasonFailure] = field(default_factory=list)


async def create_catalog_tree(
    session: AsyncSession,
    tree: Mapping[str, Any],
    *,
    on_failure: Callable[[SeasonFailure], None] | None = None,
) -> CatalogTreeResult:
    """Create a project with its seasons; a bad season is rolled back alone and reported.

    ``tree`` is ``{"project": {...Project columns}, "seasons": [{...Season columns}, ...]}``.
    The project insert is not protected: if it fails, the error propagates (translated) and the
    caller's transaction decides. Each season gets its own savepoint, so a season that breaks a
    constraint leaves the project and the other seasons in place. The caller commits.
    """
    project_data = dict(tree["project"])
    seasons_data: Sequence[Mapping[str, Any]] = tree.get("seasons", ())
    project = Project(**project_data)
    session.add(project)
    try:
        await session.flush()
    except DBAPIError as exc:
        raise translate(exc) from exc

    result = CatalogTreeResult(project=project)
    for index, season_data in enumerate(seasons_data):
        season = Season(project_id=project.id, **season_data)
        try:
            async with session.begin_nested():
                session.add(season)
        except DBAPIError as exc:
            failure = SeasonFailure(index=index, data=season_data, error=str(translate(exc)))
            log.warning(
                "season %d of project %s rolled back: %s", index, project.code, failure.error
            )
            result.failed.append(failure)
            if on_failure is not None:
                on_failure(failure)
            continue
        result.seasons.append(season)
    return result
