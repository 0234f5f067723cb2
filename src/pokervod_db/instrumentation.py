"""A dependency-free hook for timing the public operations of `queries` and `ingest`.

``@timed("operation")`` wraps an async function; every registered observer is called with the
operation's name, its duration in seconds and the exception it raised (None on success). With no
observer registered the wrapper only checks an empty list, so the library pays (next to) nothing
unless a service, e.g. `pokervod-db serve`, asks for the figures with `add_observer`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

Observer = Callable[[str, float, BaseException | None], None]
"""``observer(operation, seconds, error)``; called in the operation's task, so keep it cheap."""

_observers: list[Observer] = []


def add_observer(observer: Observer) -> Callable[[], None]:
    """Call ``observer`` after every timed operation; returns a function that removes it."""
    _observers.append(observer)

    def remove() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return remove


def observers() -> tuple[Observer, ...]:
    """The observers registered now (for tests and diagnostics)."""
    return tuple(_observers)


def _notify(operation: str, seconds: float, error: BaseException | None) -> None:
    for observer in tuple(_observers):
        try:
            observer(operation, seconds, error)
        except Exception:  # a broken observer must never break the operation it watches
            log.exception("instrumentation observer %r failed", observer)


def timed(
    operation: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an async operation so observers learn its duration and outcome."""

    def decorate(
        fn: Callable[P, Coroutine[Any, Any, R]],
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not _observers:
                return await fn(*args, **kwargs)
            started = time.perf_counter()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                _notify(operation, time.perf_counter() - started, exc)
                raise
            _notify(operation, time.perf_counter() - started, None)
            return result

        wrapper.__pokervod_operation__ = operation  # type: ignore[attr-defined]
        return wrapper

    return decorate
