"""`pokervod-db serve`: probes, Prometheus metrics, the JSON API and a status page.

Needs the ``serve`` extra (``pip install 'pokervod-db[serve]'``): Starlette, uvicorn and
prometheus_client. Mount ``create_app(settings)`` in another ASGI service or run
`pokervod_db.web.serve.run`.
"""

from __future__ import annotations

from pokervod_db.web.app import create_app

__all__ = ["create_app"]
