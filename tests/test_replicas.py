"""A primary with a real streaming standby: creation, read routing, fallback, health, promotion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text

from pokervod_db import replicas
from pokervod_db.database import Database
from pokervod_db.health import check_health
from pokervod_db.models import Project
from pokervod_db.routing import ReadOnlyTransactionError
from pokervod_db.settings import Settings
from tests.server_support import private_server, scalar, wait_for

pytestmark = pytest.mark.slow


class Cluster:
    def __init__(self, primary: Settings, base: Path) -> None:
        self.primary = primary
        self.replica_dir = base / "replica1"
        self.replica_url = ""

    def with_replica(self, **overrides: object) -> Settings:
        return self.primary.model_copy(
            update={"replica_urls": _secret(self.replica_url), **overrides}
        )


def _secret(value: str) -> object:
    from pydantic import SecretStr

    return SecretStr(value)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with private_server("repl") as (_, started, base):
        c = Cluster(started, base)
        replicas.create_replica(started, c.replica_dir)
        c.replica_url = replicas.start_replica(c.replica_dir)
        try:
            yield c
        finally:
            replicas.stop_replica(c.replica_dir)


def _insert_project(settings: Settings, code: str) -> None:
    with psycopg.connect(settings.libpq_url(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pokervod.projects (code, name) VALUES (%s, %s)", (code, f"name {code}")
        )


def _on_replica(cluster: Cluster, code: str) -> bool:
    return bool(
        scalar(
            cluster.replica_url, "SELECT count(*) FROM pokervod.projects WHERE code = %s", (code,)
        )
    )


def test_created_replica_streams_from_a_slot_and_shows_committed_rows(cluster: Cluster) -> None:
    assert scalar(cluster.replica_url, "SELECT pg_is_in_recovery()") is True
    _insert_project(cluster.primary, "REPL1")
    wait_for(lambda: _on_replica(cluster, "REPL1"), what="the row on the replica")
    slots = replicas.list_replicas(cluster.primary)
    assert [s.slot for s in slots] == [replicas.slot_name(cluster.replica_dir)]
    assert slots[0].active and slots[0].state == "streaming" and not slots[0].holds_wal


async def test_read_transaction_runs_on_the_replica_and_sees_replicated_rows(
    cluster: Cluster,
) -> None:
    _insert_project(cluster.primary, "REPL2")
    wait_for(lambda: _on_replica(cluster, "REPL2"), what="the row on the replica")
    db = Database.from_settings(cluster.with_replica())
    try:
        for _ in range(3):
            async with db.read_transaction() as session:
                assert (await session.execute(text("SELECT pg_is_in_recovery()"))).scalar_one()
                codes = (await session.execute(select(Project.code))).scalars().all()
                assert "REPL2" in codes
    finally:
        await db.dispose()


async def test_write_in_read_transaction_fails_with_one_line_and_writes_nothing(
    cluster: Cluster,
) -> None:
    for settings in (cluster.with_replica(), cluster.primary):  # on the replica, on the primary
        db = Database.from_settings(settings)
        try:
            with pytest.raises(ReadOnlyTransactionError, match=r"use Database\.transaction") as err:
                async with db.read_transaction() as session:
                    session.add(Project(code="NOPE", name="must not be written"))
                    await session.flush()
            assert "\n" not in str(err.value)
        finally:
            await db.dispose()
    assert (
        scalar(
            cluster.primary.libpq_url(),
            "SELECT count(*) FROM pokervod.projects WHERE code = 'NOPE'",
        )
        == 0
    )


async def test_lag_bound_of_zero_with_an_idle_stream_keeps_reads_on_the_replica(
    cluster: Cluster,
) -> None:
    # Caught up and streaming counts as no lag, however long ago the last commit was.
    db = Database.from_settings(cluster.with_replica(replica_max_lag_s=0.0))
    try:
        assert db.router is not None
        states = await db.router.states(refresh=True)
        assert [(s.reachable, s.lag_s, s.ok) for s in states] == [(True, 0.0, True)]
    finally:
        await db.dispose()


async def test_health_reports_replica_and_slot_and_falls_back_when_the_standby_stops(
    cluster: Cluster,
) -> None:
    settings = cluster.with_replica()
    db = Database.from_settings(settings)
    try:
        report = await check_health(settings, db.engine)
        [state] = report.replicas
        assert state["database"] == cluster.replica_url
        assert state["reachable"] and state["ok"] and 0 <= state["lag_s"] <= 10
        checks = {c.name: c for c in report.checks}
        assert checks["replicas"].ok and not checks["replicas"].critical
        assert checks["replication slots"].ok
        assert report.replication_slots[0]["active"] is True

        replicas.stop_replica(cluster.replica_dir)
        try:
            async with db.read_transaction() as session:
                in_recovery = (
                    await session.execute(text("SELECT pg_is_in_recovery()"))
                ).scalar_one()
            assert in_recovery is False  # the primary answered
            report = await check_health(settings, db.engine)
            assert report.healthy  # a stopped replica is not critical
            assert report.replicas[0]["reachable"] is False and report.replicas[0]["ok"] is False
            checks = {c.name: c for c in report.checks}
            assert (
                not checks["replicas"].ok and "reads go to the primary" in checks["replicas"].detail
            )
            assert not checks["replication slots"].ok
            assert "inactive" in checks["replication slots"].detail
        finally:
            cluster.replica_url = replicas.start_replica(cluster.replica_dir)
    finally:
        await db.dispose()


def test_create_replica_refuses_a_non_empty_directory_and_touches_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    before = replicas.list_replicas(cluster.primary)
    with pytest.raises(replicas.ReplicaError, match="not an empty directory"):
        replicas.create_replica(cluster.primary, target)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert replicas.list_replicas(cluster.primary) == before


def test_replica_commands_refuse_a_directory_that_is_not_a_replica(tmp_path: Path) -> None:
    with pytest.raises(replicas.ReplicaError, match="is not a replica made by"):
        replicas.start_replica(tmp_path)


def test_replica_urls_setting_rejects_a_url_that_is_not_postgres() -> None:
    with pytest.raises(ValueError, match="needs PostgreSQL"):
        Settings(_env_file=None, DATABASE_REPLICA_URLS="postgresql://a@h/db, mysql://b@h/db")


async def test_promoted_replica_takes_writes_and_is_no_longer_used_for_reads(
    cluster: Cluster, tmp_path: Path
) -> None:
    # A second replica of its own, so the shared one keeps streaming for the other tests.
    directory = cluster.replica_dir.parent / "replica2"
    replicas.create_replica(cluster.primary, directory)
    url = replicas.start_replica(directory)
    try:
        replicas.promote_replica(directory)
        wait_for(lambda: scalar(url, "SELECT NOT pg_is_in_recovery()"), what="the promotion")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO pokervod.projects (code, name) VALUES ('PROMO', 'p')")
        settings = cluster.primary.model_copy(update={"replica_urls": _secret(url)})
        db = Database.from_settings(settings)
        try:
            assert db.router is not None
            states = await db.router.states(refresh=True)
            assert not states[0].ok and "not in recovery" in states[0].detail
        finally:
            await db.dispose()
    finally:
        replicas.stop_replica(directory)
        replicas.drop_slot(cluster.primary, replicas.slot_name(directory))


def test_replica_directory_with_shell_characters_is_refused_before_anything_runs(
    cluster: Cluster, tmp_path: Path
) -> None:
    target = tmp_path / "r; touch pwned"
    before = replicas.list_replicas(cluster.primary)
    with pytest.raises(replicas.ReplicaError, match="does not pass to pg_ctl"):
        replicas.create_replica(cluster.primary, target)
    assert not target.exists() and not (tmp_path / "pwned").exists()
    assert replicas.list_replicas(cluster.primary) == before


def test_libpq_env_carries_every_url_option_and_refuses_unknown_ones() -> None:
    """pg_basebackup reaches a TLS primary like pg_dump does: the URL's options travel."""
    from sqlalchemy.engine import make_url

    from pokervod_db.errors import ConfigurationError
    from pokervod_db.replicas import libpq_env

    url = make_url(
        "postgresql://app:s3cret@db.example:5433/pokervod"
        "?sslmode=verify-full&sslrootcert=/ca.pem&application_name=x"
    )
    env = libpq_env(url)
    assert env["PGSSLMODE"] == "verify-full"
    assert env["PGSSLROOTCERT"] == "/ca.pem"
    assert (env["PGHOST"], env["PGPORT"], env["PGPASSWORD"]) == ("db.example", "5433", "s3cret")
    with pytest.raises(ConfigurationError, match="'frobnicate'"):
        libpq_env(url.update_query_dict({"frobnicate": "1"}))
