"""The annotation commands, run as a user would, against a real Label Studio."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from conftest import run_sabha
from labelstudio_fixture import PEOPLE, LabelStudioForTests, free_port

from sabha.platform.services.labelstudio import (
    connect_labelstudio,
    start_labelstudio,
    stop_labelstudio,
)
from sabha.platform.settings import Settings

pytestmark = pytest.mark.slow


def test_start_fails_clearly_when_the_port_is_taken(
    labelstudio_template: tuple[Path, object, object], tmp_path: Path
) -> None:
    data_dir = tmp_path / "ls"
    shutil.copytree(labelstudio_template[0], data_dir)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_sabha(
            "labelstudio",
            "start",
            "--port",
            str(port),
            env={"SABHA_LABEL_STUDIO_DATA_DIR": str(data_dir)},
            timeout=120,
        )
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_started_server_is_reused_and_found_by_other_commands(
    labelstudio_template: tuple[Path, object, object], tmp_path: Path
) -> None:
    data_dir = tmp_path / "ls"
    shutil.copytree(labelstudio_template[0], data_dir)  # migrated once: starts in seconds
    settings = Settings(data_dir=tmp_path / "sabha", label_studio_data_dir=data_dir)
    with pytest.raises(Exception, match="none runs here"):
        connect_labelstudio(settings)
    server, admin = start_labelstudio(settings, port=free_port())
    assert server.process is not None
    group = server.process.pid
    try:
        client = connect_labelstudio(settings)
        assert client.url == server.url
        assert client.version() == "1.23.2"
        assert admin.username == "admin@sabha.local"
    finally:
        stop_labelstudio(settings, server)
    assert server.process is None
    with pytest.raises(ProcessLookupError):  # the whole process group is gone
        os.killpg(group, 0)
    with pytest.raises(Exception, match="none runs here"):
        connect_labelstudio(settings)


def test_create_upload_provision_and_sync_from_the_command_line(
    labelstudio: LabelStudioForTests, tmp_path: Path
) -> None:
    env = {
        "SABHA_LABEL_STUDIO_URL": labelstudio.url,
        "SABHA_LABEL_STUDIO_TOKEN": labelstudio.admin.token,
    }
    assert run_sabha("db", "upgrade", env=env).returncode == 0
    created = run_sabha(
        "annotations",
        "create",
        "kisan-cli",
        "--language",
        "hi-Deva",
        "--task",
        "qa",
        "-k",
        "2",
        env=env,
    )
    assert created.returncode == 0, created.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question\nq1,\nq2,गेहूं कब बोएं?\n", "utf-8")
    refused = run_sabha(
        "annotations", "upload", "kisan-cli", str(bad), "--language", "hi-Deva", env=env
    )
    assert refused.returncode == 1
    assert "line 2: field 'question' is missing or empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    good = tmp_path / "good.jsonl"
    good.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"गेहूं कब बोएं? {i}"}, ensure_ascii=False) + "\n"
            for i in range(2)
        ),
        "utf-8",
    )
    uploaded = run_sabha(
        "annotations", "upload", "kisan-cli", str(good), "--language", "hi-Deva", env=env
    )
    assert "Uploaded 2 items" in uploaded.stdout, uploaded.stderr
    provisioned = run_sabha(
        "annotations", "provision", "kisan-cli", "--language", "hi-Deva", env=env
    )
    assert provisioned.returncode == 0, provisioned.stderr
    project_id = int(provisioned.stdout.rsplit("/projects/", 1)[1])
    annotator = labelstudio.client(PEOPLE[0])
    for task in labelstudio.client().task_ids(project_id):
        annotator.create_annotation(
            task,
            [
                {
                    "from_name": "answer",
                    "to_name": "question",
                    "type": "textarea",
                    "value": {"text": ["बुवाई नवंबर में करें।"]},
                }
            ],
        )
    synced = run_sabha("annotations", "sync", "kisan-cli", env=env)
    assert "2 new, 0 updated, 0 deleted, 0 unchanged" in synced.stdout, synced.stderr
    again = run_sabha("annotations", "sync", env=env)
    assert "0 new, 0 updated, 0 deleted, 2 unchanged" in again.stdout
