"""docker-compose.yml, its init script and Dockerfile keep the promises of PRD 9 and issue 2.

No Docker engine runs here: the compose file is parsed and checked, and init.sql is run on a
private database of the test server.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml  # type: ignore[import-untyped]
from psycopg import sql

from pokervod_db import embedded, migrate
from pokervod_db.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def test_db_is_postgres_15_alpine_with_pg_isready_health_check(compose):
    db = _services(compose)["db"]
    assert db["image"] == "postgres:15-alpine"
    check = db["healthcheck"]["test"]
    assert "pg_isready" in " ".join(check)
    assert db["environment"]["POSTGRES_DB"] == "pokervod"
    assert db["environment"]["POSTGRES_USER"] == "pokervod"


def test_every_published_port_is_bound_to_localhost_only(compose):
    published = [p for s in _services(compose).values() for p in s.get("ports", [])]
    assert "127.0.0.1:5432:5432" in published
    assert published and all(p.startswith("127.0.0.1:") for p in published), published


def test_password_comes_from_the_environment_with_no_default(compose):
    db = _services(compose)["db"]
    assert db["environment"]["POSTGRES_PASSWORD"] == "${DB_PASSWORD:?set DB_PASSWORD}"
    text = COMPOSE.read_text()
    uses = re.findall(r"\$\{DB_PASSWORD[^}]*\}", text)
    assert uses and all(u == "${DB_PASSWORD:?set DB_PASSWORD}" for u in uses), uses
    assert "$DB_PASSWORD" not in text  # the unchecked short form would allow an empty password


def test_init_script_is_mounted_and_creates_the_schema(compose, empty_db_settings):
    mounts = _services(compose)["db"]["volumes"]
    init = [m for m in mounts if "docker-entrypoint-initdb.d/init.sql" in m]
    assert len(init) == 1
    source = init[0].split(":")[0]
    script = (ROOT / source).resolve()
    assert script == ROOT / "scripts" / "init.sql" and script.exists()

    # Run it on an empty database as another role than the application's (the schema's owner
    # would have every privilege anyway), then migrate on top of it: the two must agree. The
    # application role is a fresh one without any privilege of its own, so only the script's
    # GRANT can give it CREATE on the schema.
    role = f"pokervod_app_{uuid.uuid4().hex[:8]}"
    sql = script.read_text().replace("TO pokervod;", f"TO {role};")
    with psycopg.connect(empty_db_settings.libpq_url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} NOLOGIN")
        try:
            before = conn.execute(
                "SELECT has_database_privilege(%s, current_database(), 'CREATE')", (role,)
            ).fetchone()
            conn.execute(sql.encode())
            owner, may_create = conn.execute(
                "SELECT nspowner::regrole::text, has_schema_privilege(%s, 'pokervod', 'CREATE') "
                "FROM pg_namespace WHERE nspname = 'pokervod'",
                (role,),
            ).fetchone() or (None, None)
            with conn.transaction(force_rollback=True):
                conn.execute(f"SET LOCAL ROLE {role}")
                conn.execute("CREATE TABLE pokervod.made_by_the_app_role (x int)")
        finally:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
    assert before == (False,) and owner != role and may_create is True
    assert migrate.upgrade(empty_db_settings).to_revision == migrate.head_revision()
    assert migrate.drift(empty_db_settings) == []


def test_migrate_is_a_one_shot_upgrade_that_waits_for_a_healthy_db(compose):
    migrate_service = _services(compose)["migrate"]
    assert migrate_service["command"] == [
        "sh",
        "-c",
        "pokervod-db upgrade head && pokervod-db roles setup",
    ]
    assert migrate_service["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate_service["restart"] == "no"
    assert (ROOT / migrate_service["build"] / "Dockerfile").exists()


def test_app_starts_only_after_migrate_completed_successfully(compose):
    app = _services(compose)["app"]
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert (
        "db" not in app["depends_on"] or app["depends_on"]["db"]["condition"] == "service_healthy"
    )


def test_services_point_database_url_at_the_db_service(compose):
    # The owner migrates; the application runs as a member of pokervod_app (no DDL).
    for name, user in (("migrate", "pokervod"), ("app", "pokervod_api"), ("serve", "pokervod_api")):
        url = _services(compose)[name]["environment"]["DATABASE_URL"]
        rendered = (
            url.replace("${DB_PASSWORD:?set DB_PASSWORD}", "pw")
            .replace("${APP_DB_PASSWORD:?set APP_DB_PASSWORD}", "pw")
            .replace("${APP_DB_USER:-pokervod_api}", "pokervod_api")
        )
        settings = Settings(_env_file=None, DATABASE_URL=rendered)
        parsed = settings.url()
        assert (parsed.host, parsed.port, parsed.database, parsed.username) == (
            "db",
            5432,
            "pokervod",
            user,
        )


def test_app_password_comes_from_the_environment_with_no_default(compose):
    text = COMPOSE.read_text()
    uses = re.findall(r"\$\{APP_DB_PASSWORD[^}]*\}", text)
    assert uses and all(u == "${APP_DB_PASSWORD:?set APP_DB_PASSWORD}" for u in uses), uses
    assert _services(compose)["db"]["environment"]["APP_DB_PASSWORD"] == uses[0]


def test_image_runtime_user_can_write_the_backup_volume(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\w+)", dockerfile, re.M)
    backup_dir = re.search(r"^ENV BACKUP_DIR=(\S+)", dockerfile, re.M)
    assert user and backup_dir
    owned = re.search(rf"chown {user.group(1)} {re.escape(backup_dir.group(1))}\b", dockerfile)
    assert owned, "the runtime user must own BACKUP_DIR"
    assert re.search(rf"chmod 0700 {re.escape(backup_dir.group(1))}\b", dockerfile)
    assert f"VOLUME {backup_dir.group(1)}" in dockerfile
    app = _services(compose)["app"]
    assert app["environment"]["BACKUP_DIR"] == backup_dir.group(1)
    assert f"backups:{backup_dir.group(1)}" in app["volumes"] and "backups" in compose["volumes"]


def test_init_roles_script_creates_the_roles_from_the_environment(compose, empty_db_settings):
    mounts = _services(compose)["db"]["volumes"]
    assert "./scripts/init-roles.sh:/docker-entrypoint-initdb.d/init-roles.sh:ro" in mounts
    if os.environ.get("POKERVOD_TEST_DATABASE_URL"):
        pytest.skip("a shared server: its roles are not ours to change")
    url = empty_db_settings.url()
    login = f"api_{uuid.uuid4().hex[:8]}"
    secret = "S3cret-" + uuid.uuid4().hex[:6]
    env = {
        "PATH": f"{embedded.bin_dir()}:{os.environ['PATH']}",
        "PGHOST": str(url.query.get("host") or url.host),
        "PGPORT": str(url.port or 5432),
        "POSTGRES_USER": str(url.username),
        "POSTGRES_DB": str(url.database),
        "APP_DB_USER": login,
        "APP_DB_PASSWORD": secret,
    }
    script = ROOT / "scripts" / "init-roles.sh"
    try:
        for _ in range(2):  # a second run changes nothing and does not fail
            done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            assert secret not in done.stdout + done.stderr
        with psycopg.connect(empty_db_settings.libpq_url(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT rolname, rolcanlogin, pg_has_role(rolname, 'pokervod_app', 'MEMBER') "
                "FROM pg_roles WHERE rolname IN ('pokervod_app', 'pokervod_readonly', %s) "
                "ORDER BY rolname",
                (login,),
            ).fetchall()
        assert rows == [
            (login, True, True),
            ("pokervod_app", False, True),
            ("pokervod_readonly", False, False),
        ]
        missing = subprocess.run(
            ["sh", str(script)],
            env={k: v for k, v in env.items() if k != "APP_DB_PASSWORD"},
            capture_output=True,
            text=True,
        )
        assert missing.returncode != 0 and "APP_DB_PASSWORD" in missing.stderr
    finally:
        with psycopg.connect(empty_db_settings.libpq_url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def test_dockerfile_installs_the_package_and_runs_the_upgrade():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", dockerfile, re.M)
    assert "COPY src" in dockerfile and re.search(r"pip install [\"']?\.", dockerfile)
    assert 'CMD ["pokervod-db", "upgrade", "head"]' in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)  # not run as root
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".env" in ignored and ".pokervod" in ignored


def test_serve_waits_for_migrate_and_is_healthy_only_when_readyz_answers_200(compose):
    serve = _services(compose)["serve"]
    assert serve["command"][:2] == ["pokervod-db", "serve"]
    assert serve["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    check = " ".join(serve["healthcheck"]["test"])
    assert "/readyz" in check and "8080" in check
    assert serve["ports"] == ["127.0.0.1:8080:8080"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert ".[serve]" in dockerfile  # the image has starlette, uvicorn and prometheus_client
