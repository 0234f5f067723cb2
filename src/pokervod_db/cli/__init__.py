"""The ``pokervod-db`` command: a thin dispatcher over the operations, one module per area.

Expected failures (bad settings, unreachable server, lock held, failed migration) raise
:class:`~pokervod_db.errors.PokervodDBError`; :func:`main` prints them as one ``FAILED: …``
line on stderr and exits 1, with no traceback.

Layout:

- ``options.py``: options shared by several commands as ``Annotated`` aliases (``JsonOption``:
  the one ``--json``).
- ``render.py``: all printing (consoles, JSON through ``events.to_json``, ``human_bytes`` in
  KiB/MiB/GiB, Rich tables, the progress bar).
- ``dispatch.py``: loading the settings, running a coroutine, running through the agent.
- one module per command area: ``server.py`` (up, down), ``migrations.py`` (upgrade,
  downgrade, current, history, revision, check), ``backup.py`` (backup …, restore),
  ``inspect.py`` (status, health, stats, events).

Adding a command area (say ``search``):

1. Create ``cli/search.py`` with ``app = typer.Typer()`` and its commands in ``Annotated``
   style, using ``JsonOption`` for ``--json`` and ``render`` for output, and calling an
   operation of the library (no SQL or business logic here)::

       app = typer.Typer()

       @app.command()
       def search(text: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
           \"\"\"Search the catalog.\"\"\"
           result = run(lambda: catalog_search(load_settings(), text))
           if as_json:
               print_json(result.to_dict())
           else:
               render.print_search(result)

2. Register it below: ``_include(search.app)`` for top-level commands (``pokervod-db
   search``), or ``app.add_typer(search.app, name="search")`` for a group (``pokervod-db
   search QUERY``, ``pokervod-db search reindex``).
"""

from __future__ import annotations

import sys

import typer

from pokervod_db.errors import PokervodDBError

from . import backup, inspect, migrations, replica, roles, serve, server
from .render import failed

app = typer.Typer(
    help="pokervod-db: the database layer of the pokervod archive.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _include(area: typer.Typer) -> None:
    """Add an area's commands at the top level (``pokervod-db COMMAND``)."""
    app.registered_commands.extend(area.registered_commands)


_include(server.app)
_include(migrations.app)
_include(backup.app)
app.add_typer(backup.backup_app, name="backup")
app.add_typer(replica.app, name="replica")
_include(inspect.app)
_include(serve.app)
app.add_typer(roles.app, name="roles")


def main() -> None:
    """Console entry point: run the app, turning expected failures into one line and exit 1."""
    try:
        app()
    except PokervodDBError as exc:
        failed(str(exc))
        sys.exit(1)
    except KeyboardInterrupt:
        failed("interrupted")
        sys.exit(130)


__all__ = ["app", "main"]
