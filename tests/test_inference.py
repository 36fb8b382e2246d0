"""The real path: tiny models, vLLM (CPU build) inside a Ray actor, the demo, the server.

These tests start real vLLM engines (about half a minute each on two cores).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.vllm]


@pytest.fixture(scope="module")
def demo_env() -> Iterator[dict[str, str]]:
    """Environment of a fresh user: own data dir and HOME, Ray on loopback."""
    root = Path(tempfile.mkdtemp(prefix="sabha-e2e-", dir="/tmp"))
    env = {
        **os.environ,
        "SABHA_DATA_DIR": str(root / "data"),
        "HOME": str(root / "home"),
        "RAY_TMPDIR": str(root / "ray"),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("SABHA_DATABASE_URL", None)
    yield env
    shutil.rmtree(root, ignore_errors=True)


def _sabha(env: dict[str, str], *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sabha.platform.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# Label Studio's part of the demo has its own tests (tests/test_demo_annotation.py), and
# so has its volunteers' part (tests/test_demo_volunteers.py; the real agent on vLLM:
# tests/test_volunteer_pools.py). This is the leaderboard's part, on vLLM.
DEMO = ("demo", "--no-serve", "--no-labelstudio", "--no-volunteers")


@pytest.fixture(scope="module")
def first_demo(demo_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = _sabha(demo_env, *DEMO)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _leaderboard(env: dict[str, str], name: str) -> dict:  # type: ignore[type-arg]
    from sabha.platform.app import create_app
    from sabha.platform.settings import Settings

    app = create_app(Settings(data_dir=Path(env["SABHA_DATA_DIR"])))
    response = app.test_client().get(f"/api/v1/benchmarks/{name}/leaderboard")
    assert response.status_code == 200
    return response.get_json()


def _run(env: dict[str, str], job_id: int) -> dict:  # type: ignore[type-arg]
    from sabha.platform.app import create_app
    from sabha.platform.settings import Settings

    app = create_app(Settings(data_dir=Path(env["SABHA_DATA_DIR"])))
    return app.test_client().get(f"/api/v1/jobs/{job_id}/results").get_json()


def test_demo_evaluates_both_tiny_models_on_both_benchmarks_with_vllm_in_ray(
    first_demo: subprocess.CompletedProcess[str], demo_env: dict[str, str]
) -> None:
    assert first_demo.stdout.count("Starting vLLM") == 2
    for name, primary in (("kisan-advisory", "chrf++"), ("indic-safety", "macro_f1")):
        board = _leaderboard(demo_env, name)
        rows = {row["model"]["name"]: row for row in board["rows"]}
        assert set(rows) == {"tiny-chat", "tiny-base"}
        for row in rows.values():
            cell = row["scores"][primary]
            assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]
            assert row["model"]["smoke_test"] is True
            details = _run(demo_env, row["job_id"])
            assert details["outputs"] == cell["n"] > 0
            where = details["shards"][0]["executed_on"]
            assert details["shards"][0]["pool"].startswith("local-")
            assert where["vllm"] == "0.32.0" and where["device"] == "cpu"
            assert re.fullmatch(r"[0-9a-f]{56}", where["ray_node_id"])
            assert where["ray_node_ip"] == "127.0.0.1"
        chat = _run(demo_env, rows["tiny-chat"]["job_id"])["samples"][0]["prompt"]
        base = _run(demo_env, rows["tiny-base"]["job_id"])["samples"][0]["prompt"]
        assert chat.startswith("<|user|>") and chat.endswith("<|assistant|>\n")
        assert not base.startswith("<|user|>")


def test_greedy_outputs_are_reproducible(
    first_demo: subprocess.CompletedProcess[str], demo_env: dict[str, str], tmp_path: Path
) -> None:
    """The same model evaluated again by a new engine gives the same text and scores."""
    models = Path(demo_env["SABHA_DATA_DIR"]) / "models"
    env = {**demo_env, "SABHA_DATA_DIR": str(tmp_path / "again")}
    for args in (
        ("db", "upgrade"),
        ("benchmarks", "load"),
        ("models", "add", "tiny-chat", "--path", str(models / "tiny-chat")),
        ("eval", "--model", "tiny-chat", "--benchmark", "kisan-advisory"),
    ):
        result = _sabha(env, *args)
        assert result.returncode == 0, result.stderr
    original = {r["model"]["name"]: r for r in _leaderboard(demo_env, "kisan-advisory")["rows"]}[
        "tiny-chat"
    ]
    repeated = _leaderboard(env, "kisan-advisory")["rows"][0]
    assert repeated["scores"] == original["scores"]
    assert [s["output"] for s in _run(env, repeated["job_id"])["samples"]] == [
        s["output"] for s in _run(demo_env, original["job_id"])["samples"]
    ]


def test_second_demo_run_reuses_everything(
    first_demo: subprocess.CompletedProcess[str], demo_env: dict[str, str]
) -> None:
    again = _sabha(demo_env, *DEMO)
    assert again.returncode == 0, again.stderr
    assert "Starting vLLM" not in again.stdout
    assert again.stdout.count("done already") == 4
    assert again.stdout.count("unchanged") == 2


def test_serve_prints_its_url_and_answers_json(
    first_demo: subprocess.CompletedProcess[str], demo_env: dict[str, str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "sabha.platform.cli", "serve", "--port", str(port)],
        env=demo_env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()
        assert first_line.strip() == f"Leaderboard: http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/benchmarks") as reply:
                    body = json.load(reply)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert {b["name"]: b["models"] for b in body["benchmarks"]} == {
            "indic-safety": 2,
            "kisan-advisory": 2,
        }
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/datasets/kisan-advisory/card"
        ) as reply:
            assert "<h2>Intended use</h2>" in reply.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_model_folder_vllm_cannot_load_gives_a_clear_error(
    first_demo: subprocess.CompletedProcess[str], demo_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(Path(demo_env["SABHA_DATA_DIR"]) / "models" / "tiny-base", broken)
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    assert _sabha(demo_env, "models", "add", "broken", "--path", str(broken)).returncode == 0
    result = _sabha(demo_env, "eval", "--model", "broken", "--benchmark", "kisan-advisory")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "vLLM could not load the model" in result.stderr
    assert "NoSuchModelForCausalLM" in result.stderr
