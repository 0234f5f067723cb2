"""Behind a real PgBouncer in transaction mode (DB_PGBOUNCER=true): application work runs with
no server-side prepared statement collisions and no session state; LISTEN, migrations and
backups go to DATABASE_DIRECT_URL. The test starts pgbouncer on a free 127.0.0.1 port in front
of the test server, and is skipped (with the reason) only where pgbouncer is not installed."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from pokervod_db import ingest, migrate, queries
from pokervod_db.database import Database
from pokervod_db.events import Event, listen, store_event
from pokervod_db.settings import Settings


def _pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pooled(db_settings: Settings) -> Iterator[Settings]:
    """Settings whose DATABASE_URL goes through pgbouncer (transaction pooling) and whose
    DATABASE_DIRECT_URL is the server itself."""
    binary = _pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer is not installed (Debian package pgbouncer; .ci/run installs it)")
    url = db_settings.url()
    host = str(url.query.get("host") or url.host or "127.0.0.1")
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="pokervod-pgbouncer-"))
    workdir.chmod(0o755)
    user = str(url.username or "postgres")
    (workdir / "users.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={url.port or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 300\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    for f in workdir.iterdir():
        f.chmod(0o644)
    command = [binary]
    if os.geteuid() == 0:
        # pgbouncer refuses to run as root: run it as the owner of the embedded server's data
        # (who can reach its socket) or, for a TCP server, as nobody.
        owner = "nobody"
        if host.startswith("/"):
            owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name
        command += ["-u", owner]
    proc = subprocess.Popen(
        [*command, str(workdir / "pgbouncer.ini")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"pgbouncer did not start: {output}")
                time.sleep(0.1)
        through = url.set(host="127.0.0.1", port=port, query={})
        yield db_settings.with_url(through).model_copy(
            update={
                "pgbouncer": True,
                "database_direct_url": db_settings.database_url,
            }
        )
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


async def test_application_work_runs_behind_pgbouncer_in_transaction_mode(
    pooled: Settings,
) -> None:
    database = Database.from_settings(pooled)
    try:
        # Many concurrent transactions share 4 server connections: the same statements are
        # prepared again and again on server connections other clients used before.
        async def work(i: int) -> int:
            async with database.transaction() as session:
                await ingest.upsert_nas_files(
                    session, [{"file_path": f"/nas/{i}.mp4", "file_name": f"{i}.mp4"}]
                )
                page = await queries.list_video_files(session, limit=5)
                assert page.items == []
                path = (await session.execute(text("SHOW search_path"))).scalar_one()
                timeout = (await session.execute(text("SHOW statement_timeout"))).scalar_one()
                assert path.startswith("pokervod") and timeout == "30s"
                count = await session.scalar(text("SELECT count(*) FROM nas_files"))
                return int(count or 0)

        for _ in range(3):
            await asyncio.gather(*(work(i) for i in range(40)))
        async with database.transaction() as session:
            assert await session.scalar(text("SELECT count(*) FROM nas_files")) == 40
        # Outside a transaction nothing of ours is left on the server connection.
        async with database.engine.connect() as conn:
            await conn.commit()
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
            assert driver is not None
            assert await driver.fetchval("SHOW statement_timeout") in ("0", "30s")
    finally:
        await database.dispose()


async def test_listen_and_migrations_use_the_direct_url(pooled: Settings) -> None:
    assert migrate.upgrade(pooled).to_revision == migrate.head_revision()
    database = Database.from_settings(pooled)
    received: list[Event] = []
    ready = asyncio.Event()

    async def follow() -> None:
        async for event in listen(pooled, on_connected=lambda _: ready.set()):
            received.append(event)
            return

    task = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(ready.wait(), 15)
        async with database.transaction() as session:
            stored = await store_event(session, Event(type="test.pgbouncer"))
        await asyncio.wait_for(task, 10)
        assert [e.id for e in received] == [stored.id]
    finally:
        task.cancel()
        await database.dispose()
