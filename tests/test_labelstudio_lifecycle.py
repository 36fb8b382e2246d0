"""`sabha labelstudio start` and `sabha demo` stop their Label Studio on SIGTERM, as on Ctrl-C.

Both run as a user (or systemd, or docker) runs them: a real process, a real
Label Studio (started from a copy of the migrated template data dir), and a
SIGTERM to the ``sabha`` process, never to Label Studio itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from conftest import REPO
from labelstudio_fixture import free_port

from sabha.platform.services.labelstudio import connect_labelstudio
from sabha.platform.settings import Settings

pytestmark = pytest.mark.slow


def _wait_for(what: str, check: object, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        if process.poll() is not None:
            pytest.fail(
                f"the command exited ({process.returncode}) before {what}: {log.read_text()}"
            )
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"no {what} within 240 s: {log.read_text()[-3000:]}")


def _running_server(data_dir: Path) -> tuple[str, int] | None:
    try:
        said = json.loads((data_dir / "server.json").read_text("utf-8"))
        httpx.get(f"{said['url']}/health", timeout=2).raise_for_status()
    except (OSError, ValueError, KeyError, httpx.HTTPError):
        return None
    return str(said["url"]), int(said["pid"])


def _gone(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def _terminate_and_check(
    process: subprocess.Popen[str], data_dir: Path, group: int, log: Path
) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        os.killpg(group, signal.SIGKILL)
        pytest.fail(f"the command did not stop on SIGTERM: {log.read_text()[-3000:]}")
    deadline = time.monotonic() + 20
    while not _gone(group) and time.monotonic() < deadline:
        time.sleep(0.2)
    if not _gone(group):
        os.killpg(group, signal.SIGKILL)
        pytest.fail("Label Studio still runs after SIGTERM to the command that started it")
    assert not (data_dir / "server.json").exists(), "a stale server.json was left behind"
    assert "Traceback" not in log.read_text()


def test_sigterm_to_labelstudio_start_stops_the_server(
    labelstudio_template: tuple[Path, object, object], tmp_path: Path
) -> None:
    data_dir = tmp_path / "ls"
    shutil.copytree(labelstudio_template[0], data_dir)
    log = tmp_path / "start.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sabha.platform.cli", "labelstudio", "start"]
            + ["--port", str(free_port())],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, "SABHA_LABEL_STUDIO_DATA_DIR": str(data_dir)},
        )
    _wait_for("Label Studio answering", lambda: _running_server(data_dir), process, log)
    running = _running_server(data_dir)
    assert running is not None
    _terminate_and_check(process, data_dir, running[1], log)
    assert process.returncode == 0 and "Stopping Label Studio" in log.read_text()


# `sabha demo` evaluates with vLLM first and runs volunteers' agents after Label Studio
# starts; those parts are not the subject here (tests/test_demo_volunteers.py has the agents).
_DEMO = textwrap.dedent(
    """
    import sys
    import sabha.platform.cli.demo as demo
    from sabha.platform.cli import cli
    demo.evaluate = lambda *args, **kwargs: None
    demo.make_demo_model = lambda *args, **kwargs: None
    cli(["demo", "--no-volunteers"], prog_name="sabha")
    """
)


def test_sigterm_to_demo_stops_its_labelstudio_and_removes_server_json(
    labelstudio_template: tuple[Path, object, object], tmp_path: Path
) -> None:
    data_dir = tmp_path / "ls"
    shutil.copytree(labelstudio_template[0], data_dir)
    log = tmp_path / "demo.log"
    env = {
        **os.environ,
        "SABHA_DATA_DIR": str(tmp_path / "sabha"),
        "SABHA_LABEL_STUDIO_DATA_DIR": str(data_dir),
        "SABHA_LABEL_STUDIO_PORT": str(free_port()),
        "SABHA_PORT": str(free_port()),
    }
    env.pop("SABHA_DATABASE_URL", None)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _DEMO],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env=env,
        )
    _wait_for(
        "the leaderboard serving", lambda: "Leaderboard: http" in log.read_text(), process, log
    )
    running = _running_server(data_dir)
    assert running is not None, log.read_text()
    _terminate_and_check(process, data_dir, running[1], log)
    assert process.returncode == 0 and "Stopped." in log.read_text()


def test_a_server_json_left_by_a_killed_server_is_not_trusted(tmp_path: Path) -> None:
    data_dir = tmp_path / "ls"
    data_dir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (data_dir / "server.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9", "pid": dead.pid})
    )
    settings = Settings(data_dir=tmp_path / "sabha", label_studio_data_dir=data_dir)
    with pytest.raises(Exception, match="none runs here"):
        connect_labelstudio(settings)
    assert not (data_dir / "server.json").exists()
