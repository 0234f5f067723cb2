"""The in-process event bus: publish and subscribe inside one process, concurrent handlers."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable

from pokervod_db.events.event import Event, EventType, error_payload

log = logging.getLogger(__name__)

ALL = "*"
"""Subscribe to this to receive every event."""


Handler = Callable[[Event], Awaitable[None] | None]


class EventBus:
    """In-process publish/subscribe with concurrent handlers and a bounded history.

    A handler that raises is logged and reported as a ``system.error`` event; the emitter and the
    other handlers carry on. A failing ``system.error`` handler is only logged (no loop).
    """

    def __init__(self, *, history_size: int = 1000) -> None:
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self._history: deque[Event] = deque(maxlen=history_size)

    def subscribe(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler`` for events of ``event_type`` (or `ALL`); returns an unsubscriber."""
        self._handlers[str(event_type)].append(handler)

        def unsubscribe() -> None:
            self.unsubscribe(event_type, handler)

        return unsubscribe

    def unsubscribe(self, event_type: str, handler: Handler) -> bool:
        """Remove a subscription; False if it was not there."""
        handlers = self._handlers.get(str(event_type), [])
        if handler in handlers:
            handlers.remove(handler)
            return True
        return False

    def history(self, event_type: str | None = None) -> list[Event]:
        """The most recent events, oldest first (optionally of one type)."""
        return [e for e in self._history if event_type is None or e.type == event_type]

    async def emit(self, event: Event) -> None:
        """Run every matching handler concurrently and wait for them all."""
        self._history.append(event)
        handlers = [*self._handlers.get(str(event.type), ()), *self._handlers.get(ALL, ())]
        if not handlers:
            return
        results = await asyncio.gather(
            *(self._call(h, event) for h in handlers), return_exceptions=True
        )
        for handler, result in zip(handlers, results, strict=True):
            if isinstance(result, Exception | asyncio.CancelledError):
                await self._report(handler, event, result)
            elif isinstance(result, BaseException):
                raise result

    @staticmethod
    async def _call(handler: Handler, event: Event) -> None:
        result = handler(event)
        if inspect.isawaitable(result):
            await result

    async def _report(self, handler: Handler, event: Event, error: BaseException) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        log.error(
            "event handler %s failed on %s: %s",
            name,
            event.type,
            error,
            exc_info=(type(error), error, error.__traceback__),
        )
        if event.type == EventType.SYSTEM_ERROR:
            return
        await self.emit(
            Event(
                type=EventType.SYSTEM_ERROR,
                payload=error_payload(
                    error,
                    operation="event handler",
                    handler=name,
                    event_type=str(event.type),
                    event_id=str(event.event_id),
                ),
                source_block=event.source_block,
                correlation_id=event.correlation_id,
                parent_event_id=event.event_id,
            )
        )
