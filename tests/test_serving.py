"""The production entry point: gunicorn with infra/gunicorn.conf.py serves Sabha."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from conftest import REPO

from sabha.platform.db import make_engine, upgrade_database

CONFIG = REPO / "infra" / "gunicorn.conf.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _gunicorn(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(CONFIG)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_gunicorn_serves_the_site_with_the_shipped_config(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    engine = make_engine(f"sqlite:///{data_dir / 'sabha.db'}")
    upgrade_database(engine)
    engine.dispose()
    port = _free_port()
    process = _gunicorn(
        {
            "SABHA_DATA_DIR": str(data_dir),
            "SABHA_BIND": f"127.0.0.1:{port}",
            "SABHA_WORKERS": "1",
            "SABHA_THREADS": "2",
        }
    )
    try:
        deadline = time.monotonic() + 60
        response = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/?secret-query=1", timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert response is not None, "gunicorn did not answer within 60 s"
        assert response.status_code == 200 and "Benchmarks" in response.text
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    finally:
        log = _stop(process)
    assert '"GET / HTTP/1.1" 200' in log, log[-2000:]
    assert "secret-query" not in log  # no query strings in the access log


def test_gunicorn_in_production_refuses_the_default_secret_key(tmp_path: Path) -> None:
    process = _gunicorn(
        {
            "SABHA_DATA_DIR": str(tmp_path / "data"),
            "SABHA_BIND": f"127.0.0.1:{_free_port()}",
            "SABHA_WORKERS": "1",
            "SABHA_ENV": "production",
            "SABHA_SECRET_KEY": "dev-only-not-secret",
        }
    )
    try:
        process.wait(timeout=60)
    finally:
        log = _stop(process)
    assert process.returncode != 0
    assert "Sabha cannot start: SABHA_SECRET_KEY is the default" in log
    assert "secrets.token_urlsafe(48)" in log and "Traceback" not in log
