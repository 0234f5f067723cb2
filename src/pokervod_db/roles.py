"""Least-privilege roles: ``pokervod_app`` (read and write data) and ``pokervod_readonly``.

The schema's owner runs `setup_roles` once after migrating (it is idempotent: run it again
after every upgrade, nothing breaks). Both roles are ``NOLOGIN`` groups; the operator adds the
logins: ``CREATE ROLE api LOGIN PASSWORD '…' IN ROLE pokervod_app``. Default privileges make
tables, sequences and functions that later migrations create (as the same owner) covered too.

What each may do:

- ``pokervod_app``: SELECT/INSERT/UPDATE/DELETE on every table of the schema (the version
  table: SELECT only, so only the owner migrates), USAGE and SELECT on its sequences (event
  ids, ``pg_sequence_last_value`` for listeners), EXECUTE on its functions. NOTIFY/LISTEN and
  advisory locks need no grant. No DDL: migrations and downgrades fail with one line.
- ``pokervod_readonly``: SELECT on every table and sequence (status, health, stats, queries,
  listening for events); every write fails with "permission denied".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from pokervod_db import embedded
from pokervod_db.database import create_sync_engine, unavailable
from pokervod_db.errors import PokervodDBError, sqlstate
from pokervod_db.migrate import VERSION_TABLE
from pokervod_db.settings import SCHEMA, Settings

APP_ROLE = "pokervod_app"
READONLY_ROLE = "pokervod_readonly"


class RolesError(PokervodDBError):
    """The roles could not be set up (not the schema's owner, no CREATEROLE, no schema)."""


@dataclass
class RolesResult:
    """What `setup_roles` did: roles created, roles switched to NOLOGIN, the grantor."""

    created: list[str] = field(default_factory=list)
    made_nologin: list[str] = field(default_factory=list)
    owner: str = ""
    schema: str = SCHEMA

    @property
    def roles(self) -> list[str]:
        return [APP_ROLE, READONLY_ROLE]


def _grants(schema: str, owner: str) -> list[str]:
    s = f'"{schema}"'
    owner_ = '"' + owner.replace('"', '""') + '"'
    app, ro = APP_ROLE, READONLY_ROLE
    return [
        f"GRANT USAGE ON SCHEMA {s} TO {app}, {ro}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {app}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {app}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {ro}",
        f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {ro}",
        # Objects later migrations create (as this owner) get the same rights.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_} IN SCHEMA {s} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_} IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_} IN SCHEMA {s} GRANT EXECUTE ON FUNCTIONS TO {app}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_} IN SCHEMA {s} GRANT SELECT ON TABLES TO {ro}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner_} IN SCHEMA {s} GRANT SELECT ON SEQUENCES TO {ro}",
    ]


def _ensure_role(conn: Connection, role: str, result: RolesResult) -> None:
    row = conn.execute(
        text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).first()
    if row is None:
        conn.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        result.created.append(role)
    elif row[0]:
        # A group role that can log in would share its rights with a password: close it.
        conn.execute(text(f"ALTER ROLE {role} NOLOGIN"))
        result.made_nologin.append(role)


def setup_roles(settings: Settings) -> RolesResult:
    """Create or update the two roles and their grants, in one transaction (all or nothing)."""
    settings = embedded.start(settings)
    engine = create_sync_engine(settings, application_name="pokervod-db roles")
    result = RolesResult()
    try:
        try:
            conn = engine.connect()
        except (DBAPIError, OSError) as exc:
            raise unavailable(settings.masked_url(), exc) from exc
        with conn:
            row = conn.execute(
                text(
                    "SELECT pg_get_userbyid(nspowner), pg_has_role(nspowner, 'MEMBER'), "
                    "current_user FROM pg_namespace WHERE nspname = :s"
                ),
                {"s": SCHEMA},
            ).first()
            if row is None:
                raise RolesError(
                    f"schema {SCHEMA} does not exist in {settings.masked_url()}; "
                    "run `pokervod-db upgrade` first (as the owner)"
                )
            owner, may_grant, user = row
            if not may_grant:
                # A non-owner's GRANT only warns "no privileges were granted": refuse instead.
                raise RolesError(
                    f"roles setup must run as the owner of schema {SCHEMA} ({owner}), "
                    f"not as {user}; nothing was changed"
                )
            result.owner = str(owner)
            conn.rollback()  # end the read's implicit transaction; the work gets its own
            try:
                with conn.begin():
                    for role in (APP_ROLE, READONLY_ROLE):
                        _ensure_role(conn, role, result)
                    for statement in _grants(SCHEMA, str(owner)):
                        conn.execute(text(statement))
                    if conn.execute(
                        text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.{VERSION_TABLE}"}
                    ).scalar():
                        conn.execute(
                            text(
                                f"REVOKE INSERT, UPDATE, DELETE ON {SCHEMA}.{VERSION_TABLE} "
                                f"FROM {APP_ROLE}"
                            )
                        )
            except DBAPIError as exc:
                first = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                hint = (
                    f"run `pokervod-db roles setup` as the owner of schema {SCHEMA} "
                    f"({owner}), with CREATEROLE"
                    if sqlstate(exc) == "42501"
                    else "nothing was changed"
                )
                raise RolesError(f"roles setup failed: {first}; {hint}") from exc
    finally:
        engine.dispose()
    return result
