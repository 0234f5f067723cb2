"""`@timed`: observers learn each operation's duration and error; without one, nothing happens."""

from __future__ import annotations

import inspect

import pytest

from pokervod_db import ingest, instrumentation, queries
from pokervod_db.errors import DuplicateError
from pokervod_db.instrumentation import add_observer, timed


@timed("test.double")
async def _double(x: int) -> int:
    return 2 * x


@timed("test.fail")
async def _fail() -> None:
    raise DuplicateError("duplicate: already there")


async def test_observer_receives_operation_duration_and_none_on_success() -> None:
    seen: list[tuple[str, float, BaseException | None]] = []
    remove = add_observer(lambda op, s, err: seen.append((op, s, err)))
    try:
        assert await _double(21) == 42
    finally:
        remove()
    assert len(seen) == 1
    op, seconds, error = seen[0]
    assert op == "test.double" and seconds >= 0 and error is None


async def test_observer_receives_the_error_and_the_error_still_propagates() -> None:
    seen: list[BaseException | None] = []
    remove = add_observer(lambda op, s, err: seen.append(err))
    try:
        with pytest.raises(DuplicateError):
            await _fail()
    finally:
        remove()
    assert isinstance(seen[0], DuplicateError)


async def test_a_failing_observer_does_not_break_the_operation() -> None:
    def broken(op: str, s: float, err: BaseException | None) -> None:
        raise RuntimeError("observer bug")

    remove = add_observer(broken)
    try:
        assert await _double(2) == 4
    finally:
        remove()


async def test_removed_observer_is_no_longer_called() -> None:
    seen: list[str] = []
    remove = add_observer(lambda op, s, err: seen.append(op))
    remove()
    remove()  # twice is harmless
    await _double(1)
    assert seen == [] and instrumentation.observers() == ()


@pytest.mark.parametrize("module", [queries, ingest], ids=["queries", "ingest"])
def test_every_public_async_function_of_queries_and_ingest_is_timed(module: object) -> None:
    public = {
        name: fn
        for name, fn in inspect.getmembers(module, inspect.iscoroutinefunction)
        if not name.startswith("_") and fn.__module__ == module.__name__  # type: ignore[attr-defined]
    }
    assert public, "no public async function found"
    untimed = [n for n, fn in public.items() if not hasattr(fn, "__pokervod_operation__")]
    assert untimed == []
    prefix = module.__name__.rsplit(".", 1)[1]  # type: ignore[attr-defined]
    assert all(fn.__pokervod_operation__ == f"{prefix}.{name}" for name, fn in public.items())
