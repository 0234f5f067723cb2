"""The triggers of 005_tag_link_created_at: tag links carry their clip's timestamps, and
``tag_clip_counts`` always equals a recount, whatever path wrote the links or the clips."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pokervod_db import ingest
from pokervod_db import queries as q
from tests.factories import HandClipFactory, TagFactory

RECOUNT = """
SELECT t.id, COALESCE(c.clips, 0), COALESCE(c.live_clips, 0),
       (SELECT count(*) FROM pokervod.hand_clip_tags l WHERE l.tag_id = t.id),
       (SELECT count(*) FROM pokervod.hand_clip_tags l
          JOIN pokervod.hand_clips h ON h.id = l.hand_clip_id
         WHERE l.tag_id = t.id AND h.deleted_at IS NULL)
FROM pokervod.tags t LEFT JOIN pokervod.tag_clip_counts c ON c.tag_id = t.id
"""
STALE_LINKS = """
SELECT count(*) FROM pokervod.hand_clip_tags l JOIN pokervod.hand_clips h ON h.id = l.hand_clip_id
WHERE l.clip_created_at IS DISTINCT FROM h.created_at
   OR l.clip_deleted_at IS DISTINCT FROM h.deleted_at
"""


async def _assert_consistent(session: AsyncSession) -> None:
    rows = (await session.execute(text(RECOUNT))).all()
    wrong = [r for r in rows if (r[1], r[2]) != (r[3], r[4])]
    assert wrong == [], f"counters differ from a recount: {wrong}"
    assert (await session.execute(text(STALE_LINKS))).scalar_one() == 0


async def test_soft_delete_and_restore_of_a_clip_move_its_tags_counts_and_lists(
    session: AsyncSession,
) -> None:
    tag, other = TagFactory(), TagFactory()
    clips = [HandClipFactory(tags=[tag, other]) for _ in range(3)]
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, tag.id) == 3

    clips[0].deleted_at = datetime.now(UTC)
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, tag.id) == 2
    assert await q.count_hand_clips_of_tag(session, tag.id, include_deleted=True) == 3
    listed = [c.id for c in (await q.get_hand_clips_of_tag(session, tag.id)).items]
    assert clips[0].id not in listed and len(listed) == 2
    await _assert_consistent(session)

    clips[0].deleted_at = None
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, other.id) == 3
    await _assert_consistent(session)


async def test_a_clips_new_created_at_moves_it_in_its_tags_newest_first_list(
    session: AsyncSession,
) -> None:
    tag = TagFactory()
    now = datetime.now(UTC)
    old, new = HandClipFactory(tags=[tag]), HandClipFactory(tags=[tag])
    old.created_at, new.created_at = now - timedelta(days=2), now - timedelta(days=1)
    await session.commit()
    assert [c.id for c in (await q.get_hand_clips_of_tag(session, tag.id)).items] == [
        new.id,
        old.id,
    ]
    old.created_at = now
    await session.commit()
    assert [c.id for c in (await q.get_hand_clips_of_tag(session, tag.id)).items] == [
        old.id,
        new.id,
    ]
    await _assert_consistent(session)


async def test_counts_follow_bulk_links_replacements_and_deletes_of_clips_and_tags(
    session: AsyncSession,
) -> None:
    t1, t2, t3 = TagFactory(), TagFactory(), TagFactory()
    clips = [HandClipFactory() for _ in range(6)]
    clips[5].deleted_at = datetime.now(UTC)
    await session.commit()
    await ingest.link_hand_clip_tags(session, {c.id: [t1.id, t2.id] for c in clips})
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, t1.id) == 5
    await _assert_consistent(session)

    await ingest.link_hand_clip_tags(session, {clips[0].id: [t3.id]}, replace=True)
    await session.execute(
        text("DELETE FROM pokervod.hand_clips WHERE id = :id"), {"id": clips[1].id}
    )
    await session.execute(
        text("UPDATE pokervod.hand_clip_tags SET tag_id = :t3 WHERE tag_id = :t2"),
        {"t2": t2.id, "t3": t3.id},
    )
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, t1.id) == 3
    assert await q.count_hand_clips_of_tag(session, t2.id) == 0
    assert await q.count_hand_clips_of_tag(session, t3.id) == 4
    assert await q.count_hand_clips_of_tag(session, t3.id, include_deleted=True) == 5
    await _assert_consistent(session)

    await session.execute(text("DELETE FROM pokervod.tags WHERE id = :id"), {"id": t1.id})
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, t1.id) == 0
    await _assert_consistent(session)


async def test_a_link_to_a_missing_clip_fails_on_its_foreign_key_and_counts_nothing(
    session: AsyncSession,
) -> None:
    tag = TagFactory()
    HandClipFactory(tags=[tag])
    await session.commit()
    tag_id = tag.id
    with pytest.raises(IntegrityError, match="fk_hand_clip_tags_hand_clip_id_hand_clips"):
        await session.execute(
            text("INSERT INTO pokervod.hand_clip_tags (hand_clip_id, tag_id) VALUES (:c, :t)"),
            {"c": uuid.uuid4(), "t": tag_id},
        )
    await session.rollback()
    assert await q.count_hand_clips_of_tag(session, tag_id) == 1
    await _assert_consistent(session)


async def test_link_timestamps_written_by_a_caller_are_replaced_by_the_clips(
    session: AsyncSession,
) -> None:
    tag, clip = TagFactory(), HandClipFactory()
    await session.commit()
    await session.execute(
        text(
            "INSERT INTO pokervod.hand_clip_tags (hand_clip_id, tag_id, clip_created_at, "
            "clip_deleted_at) VALUES (:c, :t, '2000-01-01', now())"
        ),
        {"c": clip.id, "t": tag.id},
    )
    await session.commit()
    assert await q.count_hand_clips_of_tag(session, tag.id) == 1
    await _assert_consistent(session)
