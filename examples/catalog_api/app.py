"""A small FastAPI service over `pokervod_db.queries`, written as another block would write it.

One `Database` per process, sessions by ``Depends(database.get_db)`` (commit on success,
rollback on error), and nothing but the package's public query functions. Run it with
``uvicorn --factory examples.catalog_api.app:app_from_environment``.
"""

# No ``from __future__ import annotations``: FastAPI reads the route signatures at run time,
# and `Session` below is local to create_app (it depends on the database given).
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import queries
from pokervod_db.database import Database
from pokervod_db.settings import Settings

Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]
SearchText = Annotated[str, Query(min_length=1, max_length=200)]


def _page(page: queries.Page[Any]) -> dict[str, Any]:
    cursor = page.next_cursor.encode() if page.next_cursor is not None else None
    return {"items": [asdict(item) for item in page.items], "next_cursor": cursor}


def _cursor(after: str | None) -> queries.Cursor | None:
    """The ``after`` token of the previous page; a tampered token is the client's error (400)."""
    if after is None:
        return None
    try:
        return queries.Cursor.decode(after)
    except queries.InvalidCursorError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


def create_app(database: Database) -> FastAPI:
    """The service on ``database`` (disposed when the app shuts down)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await database.dispose()

    app = FastAPI(title="pokervod catalog (example)", lifespan=lifespan)
    Session = Annotated[AsyncSession, Depends(database.get_db)]

    @app.get("/projects/{code}/tree")
    async def catalog_tree(code: str, session: Session) -> Response:
        """The project's seasons, events and episodes as one JSON document built by PostgreSQL."""
        project = await queries.get_project_by_code(session, code)
        tree = None if project is None else await queries.get_catalog_tree_json(session, project.id)
        if tree is None:
            raise HTTPException(status_code=404, detail=f"no project with code {code!r}")
        return Response(content=tree, media_type="application/json")

    @app.get("/episodes/{episode_id}/video-files")
    async def video_files_of_episode(episode_id: uuid.UUID, session: Session) -> list[Any]:
        files = await queries.get_video_files_of_episode(session, episode_id)
        return [
            {"id": f.id, "file_name": f.file_name, "display_title": f.display_title} for f in files
        ]

    @app.get("/players/{player_id}/clips")
    async def clips_of_player(
        player_id: uuid.UUID, session: Session, limit: Limit = 20, after: str | None = None
    ) -> dict[str, Any]:
        page = await queries.get_hand_clips_of_player(
            session, player_id, limit=limit, after=_cursor(after)
        )
        return _page(page)

    @app.get("/tags/{tag_id}/clips")
    async def clips_of_tag(
        tag_id: uuid.UUID, session: Session, limit: Limit = 20, after: str | None = None
    ) -> dict[str, Any]:
        page = await queries.get_hand_clips_of_tag(
            session, tag_id, limit=limit, after=_cursor(after)
        )
        return _page(page)

    @app.get("/search/video-files")
    async def search_video_files(q: SearchText, session: Session, limit: Limit = 20) -> list[Any]:
        return [asdict(hit) for hit in await queries.search_video_files(session, q, limit=limit)]

    @app.get("/search/clips")
    async def search_clips(q: SearchText, session: Session, limit: Limit = 20) -> list[Any]:
        return [asdict(hit) for hit in await queries.search_hand_clips(session, q, limit=limit)]

    return app


def app_from_environment() -> FastAPI:
    """For uvicorn ``--factory``: DATABASE_URL, or the embedded server when it is unset."""
    return create_app(Database.from_settings(Settings()))
