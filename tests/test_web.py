"""`pokervod-db serve`: probes, metrics, JSON API, read-only and secret-free, on real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import text

from pokervod_db import embedded, ingest, migrate, queries
from pokervod_db.database import async_session_factory, create_engine, transaction
from pokervod_db.events import Event as PvEvent
from pokervod_db.events import EventType, read_events, store_event
from pokervod_db.health import migration_status
from pokervod_db.monitoring import query_stats
from pokervod_db.settings import Settings
from pokervod_db.web import create_app
from pokervod_db.web.app import LOOPBACK_HOSTS
from pokervod_db.web.service import replica_lags
from tests.web_support import ThreadServer, load_sample_into

PASSWORD = "Zq7-s3cret_pw~x"
REPLICA_PASSWORD = "Rp9-replica_pw"


@pytest.fixture
async def sample_settings(db_settings: Settings) -> Settings:
    await load_sample_into(db_settings)
    return db_settings


@asynccontextmanager
async def serving(settings: Settings, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this event loop (no lifespan: also proves a mounted app starts lazily)."""
    app = create_app(settings, **{"collect_interval_s": 0.5, **options})
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client
    finally:
        await app.state.serve.stop()


async def _collected(client: httpx.AsyncClient) -> None:
    state = client.app.state.serve  # type: ignore[attr-defined]
    await state.start()
    state.collected.clear()
    await asyncio.wait_for(state.collected.wait(), 60)


def _families(body: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(body)}


def _value(family: Any, suffix: str = "", **labels: str) -> float:
    for sample in family.samples:
        if sample.name == family.name + suffix and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return float(sample.value)
    raise AssertionError(f"no sample {family.name}{suffix} {labels}")


async def test_livez_answers_without_any_database() -> None:
    dead = Settings(_env_file=None).with_url("postgresql://u@127.0.0.1:1/none")
    async with serving(dead) as client:
        response = await client.get("/livez")
    assert response.status_code == 200 and response.json() == {"alive": True}


async def test_readyz_is_200_at_head_and_names_its_critical_checks(db_settings: Settings) -> None:
    async with serving(db_settings) as client:
        response = await client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["ready"] is True and body["failed"] == []
    assert {c["name"] for c in body["checks"]} == {"reachable", "migrations", "drift"}


async def test_readyz_is_503_naming_migrations_on_an_unmigrated_database(
    empty_db_settings: Settings,
) -> None:
    async with serving(empty_db_settings) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["migrations"]


async def test_readyz_is_503_within_the_bound_when_nothing_listens() -> None:
    dead = Settings(_env_file=None, DB_CONNECT_TIMEOUT=1).with_url(
        "postgresql://u@127.0.0.1:1/none"
    )
    async with serving(dead) as client:
        started = time.perf_counter()
        response = await client.get("/readyz")
        elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert response.json()["failed"] == ["reachable"]
    assert elapsed < dead.connect_timeout + 2


async def test_readyz_is_503_within_the_bound_when_the_server_never_answers() -> None:
    # A socket that accepts TCP connections but never speaks PostgreSQL: the driver waits.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    dead = Settings(_env_file=None, DB_CONNECT_TIMEOUT=1).with_url(
        f"postgresql://u@127.0.0.1:{port}/none"
    )
    try:
        async with serving(dead) as client:
            started = time.perf_counter()
            response = await client.get("/readyz")
            elapsed = time.perf_counter() - started
    finally:
        silent.close()
    assert response.status_code == 503
    assert "reachable" in response.json()["failed"]
    assert elapsed <= dead.connect_timeout + 2


async def test_scrapes_do_not_query_the_database(sample_settings: Settings) -> None:
    async with serving(sample_settings) as client:
        await _collected(client)
        state = client.app.state.serve  # type: ignore[attr-defined]
        state._collector.cancel()
        stats = query_stats(state.agent.engine)
        assert stats is not None
        before = stats.queries
        for _ in range(20):
            assert (await client.get("/metrics")).status_code == 200
        assert stats.queries == before


async def test_readyz_storm_runs_one_health_check(db_settings: Settings) -> None:
    async with serving(db_settings, ready_cache_s=30.0) as client:
        state = client.app.state.serve  # type: ignore[attr-defined]
        await state.start()
        state._collector.cancel()  # only the probes may query in this test
        stats = query_stats(state.agent.engine)
        assert stats is not None
        before = stats.queries
        await client.get("/readyz")
        one_check = stats.queries - before
        assert one_check > 0
        state.health._at = float("-inf")  # make the cached answer stale again
        before = stats.queries
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
        assert {r.status_code for r in answers} == {200}
        assert stats.queries - before == one_check


async def test_api_answers_the_same_json_as_the_cli(sample_settings: Settings) -> None:
    async with serving(sample_settings) as client:
        status = (await client.get("/api/status")).json()
        health = (await client.get("/api/health")).json()
        stats = (await client.get("/api/stats")).json()
        top = (await client.get("/api/stats?top=2")).json()
    assert status == migration_status(sample_settings).to_dict()
    assert health["healthy"] is True and health["at_head"] is True
    assert {"checks", "pool", "latency_ms", "newest_verified_backup_age_s"} <= set(health)
    assert stats["tables"]["video_files"]["row_estimate"] >= 0
    assert {"indexes", "cache_hit_ratio", "top_statements", "database_bytes"} <= set(stats)
    assert len(top["top_statements"]["statements"]) <= 2


async def test_api_events_pages_by_id_like_the_cli(db_settings: Settings) -> None:
    engine = create_engine(db_settings)
    try:
        async with transaction(async_session_factory(engine)) as session:
            for n in range(3):
                await store_event(session, PvEvent(type="test.serve", payload={"n": n}))
    finally:
        await engine.dispose()
    expected = [e.to_dict() for e in await read_events(db_settings)]
    async with serving(db_settings) as client:
        everything = (await client.get("/api/events")).json()
        first = (await client.get("/api/events?limit=1")).json()
        rest = (await client.get(f"/api/events?since={first[0]['id']}")).json()
        typed = (await client.get("/api/events?type=nothing.such")).json()
    assert everything == expected and len(everything) == 3
    assert first + rest == everything
    assert typed == []


@pytest.mark.parametrize(
    "query",
    [
        "/api/events?since=-1",
        "/api/events?since=abc",
        "/api/events?since=" + "9" * 40,
        "/api/events?limit=0",
        "/api/events?type=" + "x" * 101,
        "/api/stats?top=51",
        "/api/stats?top=1;DROP TABLE pokervod.video_files",
    ],
)
async def test_hostile_query_parameters_get_one_line_400_and_change_nothing(
    db_settings: Settings, query: str
) -> None:
    async with serving(db_settings) as client:
        response = await client.get(query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert "\n" not in error and "must be" in error
    assert migration_status(db_settings).at_head


async def test_a_foreign_host_header_is_refused_when_serving_loopback(
    db_settings: Settings,
) -> None:
    async with serving(db_settings, allowed_hosts=LOOPBACK_HOSTS) as client:
        foreign = await client.get("/api/status", headers={"Host": "attacker.example"})
        local = await client.get("/livez", headers={"Host": "127.0.0.1:8080"})
    assert foreign.status_code == 400 and "attacker" not in foreign.text
    assert local.status_code == 200


async def test_nothing_can_be_changed_over_http(sample_settings: Settings) -> None:
    engine = create_engine(sample_settings)
    try:
        async with engine.connect() as conn:
            before = (
                await conn.execute(text("SELECT count(*) FROM pokervod.agent_events"))
            ).scalar()
        async with serving(sample_settings) as client:
            for path in ("/", "/readyz", "/metrics", "/api/health", "/api/events", "/api/stats"):
                for method in ("POST", "PUT", "DELETE", "PATCH"):
                    response = await client.request(method, path, content=b"{}")
                    assert response.status_code == 405, (method, path)
            await _collected(client)
        async with engine.connect() as conn:
            after = (
                await conn.execute(text("SELECT count(*) FROM pokervod.agent_events"))
            ).scalar()
    finally:
        await engine.dispose()
    assert after == before
    assert migration_status(sample_settings).at_head


async def test_no_response_contains_the_database_password(sample_settings: Settings) -> None:
    url = sample_settings.url().set(password=PASSWORD)
    replica = sample_settings.url().set(password=REPLICA_PASSWORD)
    settings = sample_settings.with_url(url).model_copy(
        update={"replica_urls": SecretStr(replica.render_as_string(hide_password=False))}
    )
    # A hostile (or careless) event quoting the URL with its password must not leak it either.
    engine = create_engine(settings)
    try:
        async with transaction(async_session_factory(engine)) as session:
            await store_event(
                session,
                PvEvent(
                    type=str(EventType.SYSTEM_ERROR),
                    payload={"operation": "backup", "error": f"failed on {settings.libpq_url()}"},
                ),
            )
    finally:
        await engine.dispose()
    paths = ["/", "/livez", "/readyz", "/metrics", "/api/health", "/api/status", "/api/stats",
             "/api/events", "/api/events?since=x", "/nothing"]  # fmt: skip
    async with serving(settings) as client:
        await _collected(client)
        bodies = [(p, (await client.get(p)).text) for p in paths]
    assert "failed on" in dict(bodies)["/api/events"]  # the event is there, redacted
    for path, body in bodies:
        for secret in (PASSWORD, quote(PASSWORD, safe=""), REPLICA_PASSWORD):
            assert secret not in body, path


async def test_metrics_parse_and_carry_the_database_figures(sample_settings: Settings) -> None:
    async with serving(sample_settings) as client:
        await _collected(client)
        engine = create_engine(sample_settings)
        try:
            async with async_session_factory(engine)() as session:
                await queries.list_video_files(session, limit=5)
                with pytest.raises(ingest.IngestError):
                    await ingest.upsert_nas_folders(
                        session, [{"folder_path": None, "folder_name": "x"}]
                    )
                with pytest.raises(ValueError):
                    await ingest.upsert_nas_folders(session, [{"no_such_column": 1}])
        finally:
            await engine.dispose()
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)
    assert all(name.startswith("pokervod_db_") for name in families)
    assert _value(families["pokervod_db_up"]) == 1
    assert _value(families["pokervod_db_ready"]) == 1
    assert _value(families["pokervod_db_roundtrip_seconds"]) > 0
    assert _value(families["pokervod_db_max_connections"]) >= 10
    assert _value(families["pokervod_db_table_rows"], table="video_files") >= 0
    assert _value(families["pokervod_db_table_bytes"], table="video_files") > 0
    assert _value(families["pokervod_db_pool_size"]) == sample_settings.pool_size
    assert _value(families["pokervod_db_pool_checkouts"], "_total") >= 1
    durations = families["pokervod_db_operation_duration_seconds"]
    assert durations.type == "histogram"
    assert _value(durations, "_count", operation="queries.list_video_files") == 1
    assert _value(durations, "_count", operation="ingest.upsert_nas_folders") == 2
    assert _value(families["pokervod_db_errors"], "_total", kind="IngestError") == 1
    assert _value(families["pokervod_db_errors"], "_total", kind="ValueError") == 1
    assert _value(families["pokervod_db_backups"], state="verified") == 0
    assert 0 < _value(families["pokervod_db_cache_hit_ratio"], scope="database") <= 1


def test_replica_lag_is_read_from_the_health_reports_replicas_list() -> None:
    lags = replica_lags(
        {
            "replicas": [
                {"name": "replica-1", "lag_s": 1.5},
                {"database": "postgresql://u:***@r4/db", "reachable": True, "lag_s": 0.2},
                {"url": "postgresql://r2/db", "lag_seconds": 0},
                {"name": "replica-3", "lag_s": None},
                "garbage",
            ]
        }
    )
    assert [(r.name, r.lag_s) for r in lags] == [
        ("replica-1", 1.5),
        ("postgresql://u:***@r4/db", 0.2),
        ("postgresql://r2/db", 0.0),
        ("replica-3", None),
    ]
    assert replica_lags({}) == []


@pytest.mark.slow
def test_readyz_turns_503_when_the_server_stops_and_200_when_it_returns() -> None:
    base = Path(tempfile.mkdtemp(prefix="pokervod-serve-pg-"))
    configured = Settings(_env_file=None, EMBEDDED_DATA_DIR=base / "pgdata", DB_CONNECT_TIMEOUT=2)
    bound = configured.connect_timeout + 2
    try:
        settings = embedded.start(configured)
        migrate.upgrade(settings)
        with ThreadServer(create_app(settings, collect_interval_s=1.0)) as server:
            assert server.get("/readyz").status_code == 200
            embedded.stop(configured)
            stopped = time.monotonic()
            while True:
                began = time.monotonic()
                response = server.get("/readyz")
                assert time.monotonic() - began <= bound + 0.5  # each answer within the bound
                if response.status_code == 503:
                    break
                assert time.monotonic() - stopped < 1.0 + bound + 1  # the cache lives ~1 s
                time.sleep(0.1)
            assert "reachable" in response.json()["failed"]
            assert server.get("/livez").status_code == 200
            embedded.start(configured)
            deadline = time.monotonic() + 30
            while server.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "not ready again 30 s after the restart"
                time.sleep(0.2)
    finally:
        embedded.stop(configured)
        shutil.rmtree(base, ignore_errors=True)
