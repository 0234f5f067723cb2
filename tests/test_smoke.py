from sqlalchemy import select

from pokervod_db.models import Project
from tests.factories import HandClipFactory


async def test_factory_clip_has_full_tree(session):
    clip = HandClipFactory()
    await session.flush()
    project = await session.scalar(
        select(Project).where(Project.id == clip.episode.event.season.project_id)
    )
    assert project is not None
    assert project.is_active is True
