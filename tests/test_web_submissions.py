"""Submissions in the web UI: the form, its refusals beside each field, status per shard, cancel."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select
from test_submissions import LLAMA_1B, TINY_CONFIG, another_writer, model_folder
from webtools import csrf_token, make_web_app, sign_in

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.db import session_scope
from sabha.platform.domain import Job, JobStatus, Model, Role, Shard, Submission, SubmissionJob
from sabha.platform.services.accounts import create_admin, create_user
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import finalize_job, lease_next_shard, release_lease
from sabha.platform.settings import current_settings
from sabha.platform.web.security import DEFAULT_CONTENT_SECURITY_POLICY
from sabha.platform.web.submissions import FORM_FIELDS, REFRESH_SECONDS, form_field

PASSWORD = "correct horse battery"
URDU_TITLE = "کسان کے سوالات"


def _app(db: Engine, tmp_path: Path, title: str = "Tiny generation", **settings: Any) -> Flask:
    settings.setdefault("allow_local_models", True)
    settings.setdefault("local_pool_memory_gb", 2.0)
    settings.setdefault("shard_size", 2)
    app = make_web_app(db, tmp_path, **settings)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(6), title=title))
    with session_scope(db) as session:
        register_benchmark(session, loaded, current_settings(app).resolved_artifacts_dir)
        create_admin(session, "admin", PASSWORD)
        create_user(session, "dev", password=PASSWORD, roles=[Role.SUBMITTER])
        create_user(session, "other", password=PASSWORD, roles=[Role.SUBMITTER])
        create_user(session, "nobody", password=PASSWORD)
    return app


@pytest.fixture
def app(db: Engine, tmp_path: Path) -> Flask:
    return _app(db, tmp_path)


def _client(app: Flask, username: str) -> tuple[FlaskClient, str]:
    client = app.test_client()
    sign_in(client, username, PASSWORD)
    return client, csrf_token(client.get("/submissions/new").get_data(as_text=True))


def _form(folder: Path, csrf: str, **changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf_token": csrf,
        "source": "local",
        "path": str(folder),
        "benchmarks": ["tiny-gen"],
        "license": "apache-2.0",
    }
    form.update(changes)
    return form


def _count(db: Engine, table: Any) -> int:
    with Session(db) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def _nothing_written(db: Engine) -> bool:
    return all(_count(db, table) == 0 for table in (Submission, SubmissionJob, Model, Job, Shard))


def _submit(client: FlaskClient, form: dict[str, Any]) -> int:
    response = client.post("/submissions/new", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    match = re.fullmatch(r"/submissions/(\d+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _shard_states(page: str) -> list[str]:
    return re.findall(r'<td><span class="state state-(\w+)">', page)


def test_submit_through_the_form_then_follow_each_shard_and_cancel(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    client, csrf = _client(app, "dev")
    form_page = client.get("/submissions/new").get_data(as_text=True)
    assert 'name="benchmarks" value="tiny-gen"' in form_page
    submission_id = _submit(client, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))

    page = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert _shard_states(page) == ["queued"] * 3
    assert '<progress value="0" max="6">' in page and "0 of 3 shards done" in page
    assert "Cancel this submission" in page

    with Session(db) as session:
        job_id = session.exec(select(Job.id)).one()
    assert lease_next_shard(db, register_pool(db, "lab-gpu"), [job_id]) is not None
    page = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert _shard_states(page) == ["leased", "queued", "queued"]
    assert re.search(r'state-leased">leased</span></td>\s*<td class="num">1</td>', page)
    assert '<td dir="auto">lab-gpu</td>' in page

    listing = client.get("/submissions").get_data(as_text=True)
    assert f'href="/submissions/{submission_id}"' in listing and "running" in listing

    cancelled = client.post(f"/submissions/{submission_id}/cancel", data={"csrf_token": csrf})
    assert cancelled.status_code == 303
    page = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert _shard_states(page) == ["cancelled"] * 3
    assert "the submission was cancelled" in page and "Cancel this submission" not in page
    with Session(db) as session:
        assert session.exec(select(Job.status)).one() == JobStatus.CANCELLED
        assert session.exec(select(Submission.status)).one() == "cancelled"


def test_a_failed_job_shows_its_reason_on_each_shard(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    client, csrf = _client(app, "dev")
    submission_id = _submit(client, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))
    with session_scope(db) as session:
        job = session.exec(select(Job)).one()
        job.status = JobStatus.FAILED
        job.error = "vLLM could not load the model: the weights are not valid safetensors"
    page = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert _shard_states(page) == ["failed"] * 3
    assert page.count("the weights are not valid safetensors") == 2  # the submission and job
    assert page.count("the job's failure, above") == 3  # each shard points to it
    assert "Cancel this submission" not in page


def test_a_completed_job_links_to_its_public_run_page(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    client, csrf = _client(app, "dev")
    submission_id = _submit(client, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))
    with Session(db) as session:
        job_id = session.exec(select(Job.id)).one()
    assert job_id is not None
    run_with(db, [job_id], ScriptedEngine())
    assert finalize_job(db, job_id)
    page = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert _shard_states(page) == ["done"] * 3
    assert f'href="/jobs/{job_id}"' in page and '<progress value="6" max="6">' in page
    assert client.get(f"/jobs/{job_id}").status_code == 200


@pytest.mark.parametrize(
    ("changes", "field", "kept"),
    [
        ({"source": "hub", "repo_id": "org/m", "revision": "main"}, "revision", 'value="main"'),
        ({"source": "hub", "repo_id": "no slash", "revision": "a" * 40}, "repo_id", "no slash"),
        ({"benchmarks": []}, "benchmarks", 'value="apache-2.0"'),
        ({"benchmarks": ["no-such"]}, "benchmarks", 'value="apache-2.0"'),
        ({"max_tokens": "9"}, "max_tokens", 'value="9"'),
        ({"temperature": "hot"}, "temperature", 'value="hot"'),
        ({"top_p": "0"}, "top_p", 'value="0"'),
        ({"license": ""}, "license", 'value="tiny-gen" checked'),
        ({"path": "relative/dir"}, "path", 'value="relative/dir"'),
        ({"path": "/no/such/dir"}, "path", 'value="/no/such/dir"'),
        ({"name": "bad name!"}, "name", 'value="bad name!"'),
    ],
)
def test_form_problems_are_shown_beside_their_field_and_nothing_is_written(
    app: Flask, db: Engine, tmp_path: Path, changes: dict[str, Any], field: str, kept: str
) -> None:
    client, csrf = _client(app, "dev")
    form = _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf, **changes)
    response = client.post("/submissions/new", data=form)
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page[:2000]
    assert f'id="problem-{field}"' in page and f'aria-describedby="problem-{field}"' in page
    problem = re.search(
        rf'id="problem-{field}">\s*<p class="error" dir="auto">(.*?)</p>', page, re.S
    )
    assert problem and '<span class="fix">' in problem.group(1)  # the fix is beside it
    assert problem.group(1).startswith(f"{FORM_FIELDS[field][0]}: ")  # it names the field
    assert kept in page  # the form keeps what was typed
    assert "was not queued" in page
    assert _nothing_written(db)


def test_a_model_too_big_for_any_pool_shows_the_estimate_and_the_largest_pool(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    client, csrf = _client(app, "dev")
    folder = model_folder(tmp_path, "big", LLAMA_1B)
    response = client.post("/submissions/new", data=_form(folder, csrf))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    problem = re.search(r'id="problem-source">\s*<p class="error" dir="auto">(.*?)</p>', page, re.S)
    assert problem, page[:3000]
    assert "needs about 3." in problem.group(1)
    assert "the largest pool has 2.0 GB" in problem.group(1)
    assert "smaller or quantized model" in problem.group(1)
    assert f'value="{folder}"' in page
    assert _nothing_written(db)


def test_the_quota_is_shown_above_the_form(db: Engine, tmp_path: Path) -> None:
    app = _app(db, tmp_path, submissions_per_day=1)
    client, csrf = _client(app, "dev")
    form = _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf)
    _submit(client, form)
    refused = client.post("/submissions/new", data=form)
    assert refused.status_code == 429
    assert 'id="problem-form"' in refused.get_data(as_text=True)
    assert "the limit is 1" in refused.get_data(as_text=True)
    assert _count(db, Submission) == 1


def test_local_folders_need_the_server_setting(db: Engine, tmp_path: Path) -> None:
    app = _app(db, tmp_path, allow_local_models=False)
    client, csrf = _client(app, "dev")
    assert 'name="path"' not in client.get("/submissions/new").get_data(as_text=True)
    form = _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf)
    response = client.post("/submissions/new", data=form)
    assert response.status_code == 422
    assert "does not take model folders" in response.get_data(as_text=True)
    assert _nothing_written(db)


def test_pages_need_the_submitter_role_and_a_csrf_token(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    anonymous = app.test_client()
    for path in ("/submissions", "/submissions/new", "/submissions/1"):
        response = anonymous.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    folder = model_folder(tmp_path, "tiny", TINY_CONFIG)
    nobody, _ = _client(app, "nobody")
    page = nobody.get("/submissions/new")
    assert page.status_code == 403 and "needs the admin or submitter role" in page.get_data(
        as_text=True
    )
    nobody_csrf = csrf_token(nobody.get("/account").get_data(as_text=True))
    assert nobody.post("/submissions/new", data=_form(folder, nobody_csrf)).status_code == 403
    dev, _ = _client(app, "dev")
    without = {k: v for k, v in _form(folder, "").items() if k != "csrf_token"}
    refused = dev.post("/submissions/new", data=without)
    assert refused.status_code == 400 and "Form expired" in refused.get_data(as_text=True)
    assert _nothing_written(db)
    assert "Submissions</a>" in dev.get("/account").get_data(as_text=True)
    assert "Submissions</a>" not in nobody.get("/account").get_data(as_text=True)


def test_form_posts_count_against_the_write_rate_limit(db: Engine, tmp_path: Path) -> None:
    app = _app(db, tmp_path, rate_limits=True, rate_limit_write="2 per minute")
    client, csrf = _client(app, "dev")
    form = _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf, license="")
    codes = [client.post("/submissions/new", data=form).status_code for _ in range(3)]
    assert codes == [422, 422, 429]
    assert _nothing_written(db)


def test_someone_elses_submission_is_missing_except_to_admins(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    dev, dev_csrf = _client(app, "dev")
    submission_id = _submit(dev, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), dev_csrf))
    other, other_csrf = _client(app, "other")
    assert other.get(f"/submissions/{submission_id}").status_code == 404
    refused = other.post(f"/submissions/{submission_id}/cancel", data={"csrf_token": other_csrf})
    assert refused.status_code == 404 and "/submissions" in refused.get_data(as_text=True)
    assert f"/submissions/{submission_id}" not in other.get("/submissions").get_data(as_text=True)
    with Session(db) as session:
        assert session.exec(select(Submission.status)).one() == "queued"
    admin, admin_csrf = _client(app, "admin")
    assert admin.get(f"/submissions/{submission_id}").status_code == 200
    admin.post(f"/submissions/{submission_id}/cancel", data={"csrf_token": admin_csrf})
    with Session(db) as session:
        assert session.exec(select(Submission.status)).one() == "cancelled"


def test_an_urdu_benchmark_title_renders_with_dir_auto(db: Engine, tmp_path: Path) -> None:
    app = _app(db, tmp_path, title=URDU_TITLE)
    client, csrf = _client(app, "dev")
    assert f'<span dir="auto">{URDU_TITLE}</span>' in client.get("/submissions/new").get_data(
        as_text=True
    )
    submission_id = _submit(client, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))
    page = client.get(f"/submissions/{submission_id}").get_data(as_text=True)
    assert f'<span dir="auto">{URDU_TITLE}</span>' in page


@pytest.mark.parametrize(
    ("location", "field"),
    [
        ("body.model.hub.revision", "revision"),
        (("model", "local", "path"), "path"),
        ("body.model", "source"),
        ("body.benchmarks.1", "benchmarks"),
        ("body.decoding.top_p", "top_p"),
        ("body.decoding.seed", "form"),
        ("body.license", "license"),
        ("body", "form"),
    ],
)
def test_error_locations_map_to_form_fields(location: Any, field: str) -> None:
    assert form_field(location) == field


def test_status_pages_answer_while_another_writer_holds_the_database(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    client, csrf = _client(app, "dev")
    submission_id = _submit(client, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))
    with another_writer(db):
        started = time.monotonic()
        page = client.get(f"/submissions/{submission_id}")
        listing = client.get("/submissions")
        elapsed = time.monotonic() - started
    assert page.status_code == 200 and listing.status_code == 200
    assert _shard_states(page.get_data(as_text=True)) == ["queued"] * 3
    assert elapsed < 5  # a write would wait for SQLite's busy timeout (30 s)


def _refresh_text(page: str) -> bool:
    return "this page refreshes every 5 s" in page


def test_a_submission_at_work_refreshes_its_page_until_it_finishes(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    client, csrf = _client(app, "dev")
    submission_id = _submit(client, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))
    queued = client.get(f"/submissions/{submission_id}")
    assert queued.headers["Refresh"] == str(REFRESH_SECONDS) == "5"
    page = queued.get_data(as_text=True)
    assert _refresh_text(page) and re.search(r"Updated at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    # No script: the strict policy stays as it is, and the reload is the browser's own.
    assert queued.headers["Content-Security-Policy"] == DEFAULT_CONTENT_SECURITY_POLICY
    assert "<script" not in page
    listing = client.get("/submissions")
    assert listing.headers["Refresh"] == "5"
    assert "0 of 3 shards done" in listing.get_data(as_text=True)

    with Session(db) as session:
        job_id = session.exec(select(Job.id)).one()
    assert job_id is not None
    lease = lease_next_shard(db, register_pool(db, "lab-gpu"), [job_id])
    assert lease is not None
    running = client.get(f"/submissions/{submission_id}")
    assert running.headers["Refresh"] == "5" and _refresh_text(running.get_data(as_text=True))

    release_lease(db, lease.run_id, lease.token, "the test hands it to another pool")
    run_with(db, [job_id], ScriptedEngine())
    assert finalize_job(db, job_id)
    done = client.get(f"/submissions/{submission_id}")
    assert done.status_code == 200 and "Refresh" not in done.headers
    assert not _refresh_text(done.get_data(as_text=True))
    assert _shard_states(done.get_data(as_text=True)) == ["done"] * 3
    finished_listing = client.get("/submissions")
    assert "Refresh" not in finished_listing.headers
    assert "3 of 3 shards done" in finished_listing.get_data(as_text=True)


def test_failed_and_cancelled_submissions_are_not_reloaded(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    dev, dev_csrf = _client(app, "dev")
    other, other_csrf = _client(app, "other")
    folder = model_folder(tmp_path, "tiny", TINY_CONFIG)
    cancelled_id = _submit(dev, _form(folder, dev_csrf))
    shared_id = _submit(other, _form(folder, other_csrf))  # the same model: the same job
    assert dev.post(f"/submissions/{cancelled_id}/cancel", data={"csrf_token": dev_csrf})
    with Session(db) as session:
        assert session.exec(select(Job.status)).one() == JobStatus.QUEUED  # other's goes on
    cancelled = dev.get(f"/submissions/{cancelled_id}")
    assert "Refresh" not in cancelled.headers
    assert not _refresh_text(cancelled.get_data(as_text=True))
    assert "Refresh" not in dev.get("/submissions").headers
    assert other.get(f"/submissions/{shared_id}").headers["Refresh"] == "5"

    with session_scope(db) as session:
        job = session.exec(select(Job)).one()
        job.status = JobStatus.FAILED
        job.error = "vLLM could not load the model: the weights are not valid safetensors"
    failed = other.get(f"/submissions/{shared_id}")
    assert "Refresh" not in failed.headers and "failed" in failed.get_data(as_text=True)


def test_strangers_get_no_refresh_and_no_page_of_someone_elses_submission(
    app: Flask, db: Engine, tmp_path: Path
) -> None:
    dev, csrf = _client(app, "dev")
    submission_id = _submit(dev, _form(model_folder(tmp_path, "tiny", TINY_CONFIG), csrf))
    other, _ = _client(app, "other")
    for path in (
        f"/submissions/{submission_id}",
        f"/submissions/{submission_id + 1}",
        "/submissions/99999999999999999999999",
        "/submissions/0",
        "/submissions/-1",
    ):
        refused = other.get(path)
        assert refused.status_code == 404, path
        assert "Refresh" not in refused.headers
        assert "tiny" not in refused.get_data(as_text=True)
    listing = other.get("/submissions")  # nothing of theirs at work
    assert "Refresh" not in listing.headers
    assert f"/submissions/{submission_id}" not in listing.get_data(as_text=True)
    signed_out = app.test_client().get(f"/submissions/{submission_id}")
    assert signed_out.status_code == 302 and "Refresh" not in signed_out.headers
