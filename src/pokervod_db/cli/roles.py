"""``pokervod-db roles setup``: the least-privilege roles (run by the schema's owner)."""

from __future__ import annotations

import typer

from pokervod_db.roles import APP_ROLE, READONLY_ROLE, setup_roles

from .dispatch import started_settings
from .options import JsonOption
from .render import print_json, say

app = typer.Typer(help="Least-privilege roles for the application and for readers.")


@app.command()
def setup(as_json: JsonOption = False) -> None:
    """Create or update the NOLOGIN roles pokervod_app and pokervod_readonly (idempotent)."""
    result = setup_roles(started_settings())
    if as_json:
        print_json(
            {
                "roles": result.roles,
                "created": result.created,
                "made_nologin": result.made_nologin,
                "owner": result.owner,
                "schema": result.schema,
            }
        )
        return
    created = ", ".join(result.created) or "none (they existed)"
    say(
        f"roles {APP_ROLE} and {READONLY_ROLE} are set up on schema {result.schema}; created: {created}"
    )
    say(f"add a login with: CREATE ROLE api LOGIN PASSWORD '…' IN ROLE {APP_ROLE}")
