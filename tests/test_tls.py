"""TLS to a server as a first-class case: ``sslmode=verify-full`` with ``sslrootcert``.

A private PostgreSQL server (the system's build: the embedded one has no OpenSSL) is started
with ``ssl=on`` on 127.0.0.1 (a free port) and a server certificate signed by a throwaway CA
made here; the application (asyncpg), migrations
(psycopg), backup, verify and restore (pg_dump/pg_restore and our own connections) all connect
with the CA and check the host name. A client given another CA must fail in one line.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from pokervod_db import backup, migrate
from pokervod_db.database import check_connection, create_engine, create_sync_engine
from pokervod_db.errors import DatabaseUnavailableError
from pokervod_db.settings import Settings

pytestmark = pytest.mark.slow


def _make_ca(directory: Path, name: str) -> tuple[object, object, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _server_cert(ca_key: object, ca_cert: object, data_dir: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)  # type: ignore[attr-defined]
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    owner = data_dir.stat()
    for name, data in (
        ("server.crt", cert.public_bytes(serialization.Encoding.PEM)),
        (
            "server.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
    ):
        path = data_dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        if os.geteuid() == 0:
            os.chown(path, owner.st_uid, owner.st_gid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_bin_dir() -> Path | None:
    """A PostgreSQL server built with OpenSSL (the embedded build has no TLS), or None."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for bin_dir in candidates:
        if all((bin_dir / p).exists() for p in ("initdb", "pg_ctl", "postgres", "pg_dump")):
            return bin_dir
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[Settings, Path, Path]]:
    """(settings with a verify-full URL, its CA file, another CA's file)."""
    bin_dir = _server_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server built with OpenSSL in /usr/lib/postgresql/*/bin")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to run the TLS server")
    base = Path(tempfile.mkdtemp(prefix="pokervod-tls-"))
    base.chmod(0o755)
    data_dir = base / "pgdata"
    data_dir.mkdir(mode=0o700)
    if os.geteuid() == 0:
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
    started = False
    try:
        subprocess.run(
            _as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data_dir),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-N",
                ]
            ),
            check=True,
            capture_output=True,
        )
        ca_key, ca_cert, ca_file = _make_ca(base, "throwaway-ca")
        _, _, other_ca = _make_ca(base, "another-ca")
        _server_cert(ca_key, ca_cert, data_dir)
        port = _free_port()
        subprocess.run(
            _as_server_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data_dir),
                    "-w",
                    "-l",
                    str(data_dir / "log"),
                    "-o",
                    f"-h 127.0.0.1 -p {port} -k {data_dir} -c ssl=on "
                    "-c ssl_cert_file=server.crt -c ssl_key_file=server.key -c fsync=off",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        started = True
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={ca_file}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE pokervod")
        settings = Settings(_env_file=None).with_url(url.replace("/postgres?", "/pokervod?"))
        # The embedded client programs are built without TLS: use the server's own.
        yield settings.model_copy(update={"pg_bin_dir": bin_dir}), ca_file, other_ca
    finally:
        if started:
            subprocess.run(
                _as_server_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "stop"]
                ),
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(base, ignore_errors=True)


async def test_application_engine_connects_with_verify_full(tls_server) -> None:
    settings, _, _ = tls_server
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            ssl = await conn.execute(
                text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            )
            assert ssl.scalar_one() is True
    finally:
        await engine.dispose()


def test_maintenance_engine_connects_with_verify_full(tls_server) -> None:
    settings, _, _ = tls_server
    engine = create_sync_engine(settings)
    try:
        with engine.connect() as conn:
            ssl = conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            assert ssl.scalar_one() is True
    finally:
        engine.dispose()


def test_migrations_backup_verify_and_restore_work_over_verify_full(
    tls_server, tmp_path: Path
) -> None:
    settings, _, _ = tls_server
    settings = settings.model_copy(update={"backup_dir": tmp_path / "backups"})
    migrate.upgrade(settings)
    assert migrate.current(settings) == migrate.head_revision()
    made = backup.create_backup(settings)
    assert backup.verify_backup(settings, made.file).ok
    result = backup.restore_backup(settings, archive=made.file)
    assert result.row_counts == made.row_counts


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_a_server_certificate_from_another_ca_is_refused(tls_server, driver: str) -> None:
    settings, _, other_ca = tls_server
    wrong = settings.with_url(settings.url().update_query_dict({"sslrootcert": str(other_ca)}))
    if driver == "asyncpg":
        engine = create_engine(wrong)
        try:
            with pytest.raises(DatabaseUnavailableError) as info:
                await check_connection(engine, wait_s=10)
        finally:
            await engine.dispose()
        assert "\n" not in str(info.value)
    else:
        with pytest.raises(DatabaseUnavailableError, match="certificate"):
            migrate.current(wrong)
