"""``pokervod-db serve`` run as a user runs it: a subprocess on a free port of 127.0.0.1."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pokervod_db.settings import Settings
from tests.conftest import run_coroutine
from tests.web_support import load_sample_into

CLI = str(Path(sys.executable).parent / "pokervod-db")
ENDPOINTS = ("/", "/livez", "/readyz", "/metrics", "/api/health", "/api/status", "/api/stats",
             "/api/events")  # fmt: skip


def _listening_url(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            found = re.search(r"http://\S+?/", line)
            if found:
                return found.group(0).rstrip("/")
        if proc.poll() is not None:
            break
    raise AssertionError(
        f"serve did not report its address; stderr: {proc.stderr.read() if proc.stderr else ''}"
    )


@pytest.mark.slow
def test_serve_answers_every_endpoint_on_the_sample_database_and_stops_on_sigint(
    db_settings: Settings, cli_env: dict[str, str]
) -> None:
    run_coroutine(load_sample_into(db_settings))
    proc = subprocess.Popen(
        [CLI, "serve", "--port", "0"],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = _listening_url(proc)
        assert url.startswith("http://127.0.0.1:")  # loopback unless --host says otherwise
        answers = {path: httpx.get(url + path, timeout=30) for path in ENDPOINTS}
        rebound = httpx.get(url + "/api/status", headers={"Host": "attacker.example"})
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert {p: r.status_code for p, r in answers.items()} == dict.fromkeys(ENDPOINTS, 200)
    assert "video_files" in answers["/"].text
    assert rebound.status_code == 400  # loopback only answers loopback host names
    assert answers["/readyz"].json()["ready"] is True
    assert list(text_string_to_metric_families(answers["/metrics"].text))
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_serve_on_a_taken_port_fails_in_one_line(cli_env: dict[str, str]) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [CLI, "serve", "--port", str(port)],
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        taken.close()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: cannot listen on 127.0.0.1:")


def test_serve_with_an_unknown_host_fails_in_one_line(cli_env: dict[str, str]) -> None:
    result = subprocess.run(
        [CLI, "serve", "--host", "no such host!", "--port", "0"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: cannot listen on 'no such host!'")
