"""The audit bundle of a scoring run, and `sabha audit`, which recomputes its numbers offline.

A job is scored by the real scoring service (scripted engine, real sacrebleu),
its bundle is downloaded over HTTP, and `sabha audit` runs on the file in a
subprocess with no database, from an empty folder. Items of a private
held-out split enter the bundle as hashes only.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from apitools import PROBLEM
from click.testing import CliRunner
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask import Flask
from pooltools import Platform
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from webtools import make_web_app, sign_in

from sabha.annotation.release import release_dataset_version
from sabha.leaderboards.audit import output_hash, sha256_hex
from sabha.platform.benchmarks import CardText, DatasetContent, ItemSpec, load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.cli import cli
from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    Job,
    JobStatus,
    Role,
    Score,
    ScoringRun,
    Submission,
    SubmissionJob,
    id_of,
)
from sabha.platform.services.accounts import create_user
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job

SECRET_QUESTION = "गुप्त प्रश्न: अरहर में फूल कब आते हैं?"
SECRET_REFERENCE = "गुप्त उत्तर: बुवाई के लगभग सौ दिन बाद।"
SECRET_ANSWER_MARK = "गुप्त-मॉडल-उत्तर"
PASSWORD = "correct horse battery"


def _generation_items() -> list[ItemSpec]:
    public = [
        ItemSpec.model_validate({**item, "input": {"question": f"{item['input']['question']} {i}"}})
        for i, item in enumerate(generation_items(12))
    ]
    private = [
        ItemSpec.model_validate(
            {
                "id": f"held-{i}",
                "language": "hi-Deva",
                "split": "test",
                "input": {"question": f"{SECRET_QUESTION} {i}"},
                "reference": SECRET_REFERENCE,
            }
        ).model_copy(update={"split": "private"})  # as an annotated release makes them
        for i in range(3)
    ]
    return public + private


def _answer(request: Any) -> str:
    """Partly right answers, so chrF++ and BLEU are neither 0 nor 100; private ones marked."""
    if SECRET_QUESTION in request.text:
        return f"{SECRET_ANSWER_MARK} {request.item_id}"
    if "सिंचाई" in request.text:
        return "पहली सिंचाई बुवाई के तीन सप्ताह बाद"
    return "Panda mwanzoni mwa mvua" if request.item_id % 3 else "Sijui"


def _scored_generation_job(db: Engine, tmp_path: Path, artifacts: Path) -> int:
    """A job on a dataset with a private held-out split, run and scored; one item failed."""
    content = DatasetContent(
        name="kilimo-audit",
        title="Kilimo audit",
        license="CC-BY-4.0",
        task="generation",
        languages=["hi-Deva", "sw-Latn"],
        labels=[],
        attributes={},
        card=CardText(
            summary="Advisory questions.",
            collection_process="Written for a test.",
            intended_use="Tests.",
            limitations="Tiny.",
        ),
        items=_generation_items(),
        source="annotation",
        input_fields=["question"],
    )
    with session_scope(db) as session:
        release_dataset_version(session, content, artifacts)
    loaded = load_benchmark_file(
        write_benchmark(
            tmp_path / "b", [], name="kilimo-audit", dataset=f"kilimo-audit@{content.content_hash}"
        )
    )
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, artifacts)
        model = add_model(session, "audited", repo_id="org/audited", revision="a" * 40)
        job_id = id_of(create_job(session, model, benchmark, shard_size=4)[0])
    # Item ids are database ids: the public items come first, in key order.
    run_with(db, [job_id], ScriptedEngine(answer=_answer, errors={5: "prompt too long: 9000"}))
    return job_id


def _scored_classification_job(db: Engine, tmp_path: Path, artifacts: Path) -> int:
    labels = ["सुरक्षित", "असुरक्षित"]
    items = [
        {
            "id": f"s-{i:02d}",
            "language": "hi-Deva",
            "split": "test",
            "input": {"prompt": f"अनुरोध {i}"},
            "label": labels[i % 2],
        }
        for i in range(10)
    ]
    path = write_benchmark(
        tmp_path / "c",
        items,
        name="tiny-safety",
        task="classification",
        labels=labels,
        metrics=["accuracy", "macro_f1"],
        primary_metric="macro_f1",
        prompt={"template": "{prompt}\nउत्तर:"},
        languages=["hi-Deva"],
        dataset={
            "name": "tiny-safety",
            "items": "tiny-safety.jsonl",
            "license": "CC-BY-4.0",
            "card": {
                "summary": "Safety prompts.",
                "collection_process": "Written for a test.",
                "intended_use": "Tests.",
                "limitations": "Tiny.",
            },
        },
    )
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, load_benchmark_file(path), artifacts)
        model = add_model(session, "classifier", repo_id="org/c", revision="c" * 40)
        job_id = id_of(create_job(session, model, benchmark)[0])
    # Right on two thirds of the prompts, an unparseable answer on some.
    answers = ["असुरक्षित।", "सुरक्षित", "पता नहीं"]
    run_with(db, [job_id], ScriptedEngine(answer=lambda r: answers[r.item_id % 3]))
    return job_id


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> tuple[Flask, Engine, int]:
    app = make_web_app(db, tmp_path)
    artifacts = tmp_path / "web-data" / "artifacts"
    return app, db, _scored_generation_job(db, tmp_path, artifacts)


def _members(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(bundle: bytes, change: Callable[[dict[str, bytes]], None]) -> bytes:
    """The bundle with its members changed by ``change`` (a forger's edit)."""
    members = _members(bundle)
    change(members)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _audit_offline(bundle: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`sabha audit` as an outsider runs it: no database reachable, an empty folder."""
    env = {
        **os.environ,
        "SABHA_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/nowhere",
        "SABHA_DATA_DIR": str(cwd / "no-such-dir"),
    }
    return subprocess.run(
        [sys.executable, "-m", "sabha.platform.cli", "audit", str(bundle)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def _audit(path: Path) -> Any:
    return CliRunner().invoke(cli, ["audit", str(path)])


@pytest.mark.postgresql
def test_a_downloaded_bundle_reproduces_every_number_of_its_scoring_run(
    site: tuple[Flask, Engine, int], tmp_path: Path
) -> None:
    app, db, job_id = site
    client = app.test_client()
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f"/api/v1/jobs/{job_id}/audit-bundle?scoring_run=" in page
    response = client.get(f"/api/v1/jobs/{job_id}/audit-bundle")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["ETag"] == f'"{sha256_hex(response.data)}"'
    again = client.get(f"/api/v1/jobs/{job_id}/audit-bundle")
    assert again.data == response.data  # same run, same bytes
    unchanged = client.get(
        f"/api/v1/jobs/{job_id}/audit-bundle", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert unchanged.status_code == 304

    bundle = tmp_path / "download" / "bundle.zip"
    bundle.parent.mkdir()
    bundle.write_bytes(response.data)
    outsider = tmp_path / "outsider"
    outsider.mkdir()
    result = _audit_offline(bundle, outsider)
    assert result.returncode == 0, result.stdout + result.stderr
    with Session(db) as session:
        run = session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).one()
        scores = session.exec(select(Score).where(Score.scoring_run_id == run.id)).all()
    assert run.failed_items == 1 and run.items == 12
    lines = result.stdout.splitlines()
    for score in scores:
        row = [
            line
            for line in lines
            if line.split()[:3] == [score.metric, score.breakdown, score.group]
        ]
        assert len(row) == 1, (score.metric, score.breakdown, score.group, result.stdout)
        expected = "hashes only" if score.breakdown == "held_out" else "match"
        assert row[0].endswith(expected)
    public = [s for s in scores if s.breakdown != "held_out"]
    assert len(public) == 6 and {s.metric for s in public} == {"chrf++", "bleu"}
    assert all(0 < s.value < 100 for s in public if s.metric == "chrf++")
    assert f"MATCH: all {len(public)} public numbers" in result.stdout
    assert "2 held-out number(s) not recomputable" in result.stdout


def test_private_items_enter_the_bundle_as_hashes_only(
    site: tuple[Flask, Engine, int],
) -> None:
    app, _, job_id = site
    data = app.test_client().get(f"/api/v1/jobs/{job_id}/audit-bundle").data
    members = _members(data)
    everything = data + b"".join(members.values())
    for secret in (SECRET_QUESTION, SECRET_REFERENCE, SECRET_ANSWER_MARK, "held-0", "held-2"):
        assert secret.encode("utf-8") not in everything
    private = [json.loads(line) for line in members["private_items.jsonl"].splitlines()]
    assert len(private) == 3 and all(set(row) == {"item_hash", "output_hash"} for row in private)
    manifest = json.loads(members["manifest.json"])
    assert manifest["held_out"] == {"breakdown": "held_out", "group": "private", "items": 3}
    assert [s["n"] for s in manifest["scores"] if s["breakdown"] == "held_out"] == [3, 3]
    assert len(members["items.jsonl"].splitlines()) == 12
    assert members["card.md"].decode().startswith("---")
    assert [shard["server_only"] for shard in manifest["shards"]] == [False] * 3 + [True]
    assert all(shard["runs"][0]["pool"] == "test-pool" for shard in manifest["shards"])


def test_a_bundle_with_one_output_changed_does_not_match(
    site: tuple[Flask, Engine, int], tmp_path: Path
) -> None:
    app, _, job_id = site
    original = app.test_client().get(f"/api/v1/jobs/{job_id}/audit-bundle").data

    def change_output(members: dict[str, bytes], rehash: bool) -> None:
        rows = [json.loads(line) for line in members["items.jsonl"].splitlines()]
        row = rows[1]
        assert row["id"] == "t-001"
        row["output"] = "Panda mwanzoni mwa mvua za masika."  # the reference: a better score
        if rehash:  # a careful forger: every hash made to fit
            row["output_hash"] = output_hash(row, row["output"], row["error"])
        text = b"".join(
            json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
            + b"\n"
            for r in rows
        )
        members["items.jsonl"] = text
        if rehash:
            manifest = json.loads(members["manifest.json"])
            manifest["files"]["items.jsonl"] = sha256_hex(text)
            members["manifest.json"] = json.dumps(manifest).encode()

    naive = tmp_path / "naive.zip"
    naive.write_bytes(_rewrite(original, lambda m: change_output(m, rehash=False)))
    result = _audit(naive)
    assert result.exit_code == 1
    assert "item 't-001': its output does not match its output_hash" in result.output
    assert "items.jsonl does not match its SHA-256" in result.output
    assert "NOT MATCHING" in result.output

    careful = tmp_path / "careful.zip"
    careful.write_bytes(_rewrite(original, lambda m: change_output(m, rehash=True)))
    result = _audit(careful)
    assert result.exit_code == 1
    assert "its output does not match" not in result.output  # the hashes fit...
    mismatched = [line for line in result.output.splitlines() if "MISMATCH" in line]
    assert any(line.split()[:3] == ["chrf++", "overall", "all"] for line in mismatched)
    assert any(line.split()[:3] == ["chrf++", "language", "sw-Latn"] for line in mismatched)
    assert "NOT MATCHING" in result.output  # ...but the published numbers do not


def test_a_bundle_missing_a_private_item_does_not_match(
    site: tuple[Flask, Engine, int], tmp_path: Path
) -> None:
    app, _, job_id = site
    original = app.test_client().get(f"/api/v1/jobs/{job_id}/audit-bundle").data

    def drop_one(members: dict[str, bytes]) -> None:
        members["private_items.jsonl"] = b"".join(
            members["private_items.jsonl"].splitlines(True)[1:]
        )
        manifest = json.loads(members["manifest.json"])
        manifest["files"]["private_items.jsonl"] = sha256_hex(members["private_items.jsonl"])
        members["manifest.json"] = json.dumps(manifest).encode()

    bundle = tmp_path / "dropped.zip"
    bundle.write_bytes(_rewrite(original, drop_one))
    result = _audit(bundle)
    assert result.exit_code == 1
    assert "the run scored 3 private items; private_items.jsonl has 2" in result.output


def test_a_classification_run_is_reproduced_with_its_unparseable_share(
    db: Engine, tmp_path: Path
) -> None:
    app = make_web_app(db, tmp_path)
    job_id = _scored_classification_job(db, tmp_path, tmp_path / "web-data" / "artifacts")
    bundle = tmp_path / "classification.zip"
    bundle.write_bytes(app.test_client().get(f"/api/v1/jobs/{job_id}/audit-bundle").data)
    result = _audit(bundle)
    assert result.exit_code == 0, result.output
    checked = {line.split()[0] for line in result.output.splitlines() if line.endswith("match")}
    assert checked == {"accuracy", "macro_f1", "unparseable"}
    assert "content hash checked" in result.output


def test_a_private_submissions_bundle_is_missing_to_strangers(
    site: tuple[Flask, Engine, int],
) -> None:
    app, db, job_id = site
    with session_scope(db) as session:
        owner = create_user(session, "owner", password=PASSWORD, roles=[Role.SUBMITTER])
        create_user(session, "admin", password=PASSWORD, roles=[Role.ADMIN])
        job = session.get(Job, job_id)
        assert job is not None
        submission = Submission(
            user_id=id_of(owner),
            model_id=job.model_id,
            license="apache-2.0",
            benchmarks=["kilimo-audit"],
        )
        session.add(submission)
        session.flush()
        session.add(SubmissionJob(submission_id=id_of(submission), job_id=job_id))
        job.status = JobStatus.CANCELLED  # a cancelled submission's job stays private for good
    url = f"/api/v1/jobs/{job_id}/audit-bundle"
    stranger = app.test_client().get(url)
    missing = app.test_client().get("/api/v1/jobs/9999/audit-bundle")
    assert stranger.status_code == missing.status_code == 404
    assert stranger.mimetype == missing.mimetype == PROBLEM
    for name in ("owner", "admin"):
        client = app.test_client()
        sign_in(client, name, PASSWORD)
        assert client.get(url).status_code == 200


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/jobs/0/audit-bundle", 422),
        ("/api/v1/jobs/-1/audit-bundle", 404),
        ("/api/v1/jobs/99999999999999999999999/audit-bundle", 422),
        ("/api/v1/jobs/abc/audit-bundle", 404),
        ("/api/v1/jobs/{job}/audit-bundle?scoring_run=junk", 422),
        ("/api/v1/jobs/{job}/audit-bundle?scoring_run=-5", 422),
        ("/api/v1/jobs/{job}/audit-bundle?scoring_run=99999999999999999999", 422),
        ("/api/v1/jobs/{job}/audit-bundle?scoring_run=999", 404),
        ("/api/v1/jobs/{other}/audit-bundle", 404),
    ],
)
def test_hostile_bundle_addresses_get_a_problem_not_a_crash(
    site: tuple[Flask, Engine, int], tmp_path: Path, path: str, status: int
) -> None:
    app, db, job_id = site
    with session_scope(db) as session:  # a job with no scores yet
        job = session.get(Job, job_id)
        benchmark = session.get(Benchmark, job.benchmark_id if job else 0)
        waiting = add_model(session, "waiting", repo_id="org/w", revision="b" * 40)
        other = id_of(create_job(session, waiting, benchmark, shard_size=4)[0])
    response = app.test_client().get(path.format(job=job_id, other=other))
    assert response.status_code == status
    assert response.mimetype == PROBLEM


def _bad_bundles(tmp_path: Path, good: bytes) -> dict[str, Path]:
    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    def newer(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest["format_version"] = 2
        members["manifest.json"] = json.dumps(manifest).encode()

    return {
        "not a file": tmp_path / "missing.zip",
        "not a zip": write("notes.zip", "सिर्फ़ पाठ".encode()),
        "truncated": write("truncated.zip", good[: len(good) // 2]),
        "format version": write("newer.zip", _rewrite(good, newer)),
        "no manifest": write("bare.zip", _rewrite(good, lambda m: m.pop("manifest.json"))),
        "bad row": write(
            "row.zip",
            _rewrite(good, lambda m: m.update({"items.jsonl": b'{"id": 5}\n'})),
        ),
    }


def test_what_is_not_a_bundle_gets_one_clear_error_and_no_traceback(
    site: tuple[Flask, Engine, int], tmp_path: Path
) -> None:
    app, _, job_id = site
    good = app.test_client().get(f"/api/v1/jobs/{job_id}/audit-bundle").data
    expected = {
        "not a file": "is not a file",
        "not a zip": "not a readable zip archive",
        "truncated": "not a readable zip archive",
        "format version": "format version 2; this Sabha reads version 1",
        "no manifest": "it has no manifest.json",
        "bad row": "items.jsonl line 1, field 'id'",
    }
    for case, path in _bad_bundles(tmp_path, good).items():
        result = _audit(path)
        assert result.exit_code == 1, (case, result.output)
        assert "Traceback" not in result.output
        assert result.output.startswith("Error: "), (case, result.output)
        assert expected[case] in result.output, (case, result.output)
        assert "Fix: " in result.output


@pytest.mark.slow
def test_a_bundle_served_by_gunicorn_is_reproduced(db: Engine, tmp_path: Path) -> None:
    job_id = _scored_generation_job(db, tmp_path, tmp_path / "data" / "artifacts")
    platform = Platform(db, tmp_path, lease_seconds=60)
    platform.start()
    try:
        answer = requests.get(f"{platform.url}/api/v1/jobs/{job_id}/audit-bundle", timeout=30)
    finally:
        platform.stop()
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    bundle = tmp_path / "served.zip"
    bundle.write_bytes(answer.content)
    outsider = tmp_path / "outsider"
    outsider.mkdir()
    result = _audit_offline(bundle, outsider)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MATCH: all 6 public numbers" in result.stdout
