"""A submission's jobs and run pages are its submitter's (and admins') until the job completes.

Anyone else, signed in or not, with a token or without, gets the same 404
as for an id that was never used, so walking ids 1..n finds only public
jobs. Jobs no submission made (a maintainer's ``sabha eval``) are public,
and a completed job is public: its scores are on the leaderboard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apitools import PROBLEM, bearer, user_with_token
from conftest import ScriptedEngine, generation_items, run_with, write_benchmark
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.engine import Engine
from webtools import make_web_app, sign_in

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import Role, Submission, SubmissionJob, TokenScope, id_of
from sabha.platform.services.accounts import create_user, get_user
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job, finalize_job
from sabha.platform.settings import current_settings

PASSWORD = "correct horse battery"


@pytest.fixture
def site(db: Engine, tmp_path: Path) -> dict[str, Any]:
    app = make_web_app(db, tmp_path)
    loaded = load_benchmark_file(write_benchmark(tmp_path / "b", generation_items(4)))
    dev_id, dev_token = user_with_token(db, "dev")
    _, other_token = user_with_token(db, "other")
    _, admin_token = user_with_token(
        db, "boss", roles=(Role.ADMIN,), scopes=(TokenScope.ADMIN, TokenScope.SUBMIT)
    )
    with session_scope(db) as session:
        for name, roles in (("devweb", [Role.SUBMITTER]), ("admin", [Role.ADMIN])):
            create_user(session, name, password=PASSWORD, roles=roles)
        artifacts = current_settings(app).resolved_artifacts_dir
        benchmark, _ = register_benchmark(session, loaded, artifacts)
        maintainers = add_model(session, "maintainers-model", repo_id="org/a", revision="a" * 40)
        public_job = id_of(create_job(session, maintainers, benchmark, 2)[0])
        unreleased = add_model(session, "unreleased-model", repo_id="org/b", revision="b" * 40)
        private_job = id_of(create_job(session, unreleased, benchmark, 2)[0])
        for user_id in (dev_id, _user_id(session, "devweb")):
            submission = Submission(
                user_id=user_id,
                model_id=id_of(unreleased),
                license="apache-2.0",
                benchmarks=[benchmark.name],
            )
            session.add(submission)
            session.flush()
            session.add(SubmissionJob(submission_id=id_of(submission), job_id=private_job))
    return {
        "app": app,
        "db": db,
        "public": public_job,
        "private": private_job,
        "tokens": {"dev": dev_token, "other": other_token, "admin": admin_token},
    }


def _user_id(session: Any, name: str) -> int:
    return id_of(get_user(session, name))


def _signed_in(app: Flask, name: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, name, PASSWORD)
    return client


def _reads(client: FlaskClient, job_id: int, headers: dict[str, str] | None = None) -> list[int]:
    """The statuses of the job's four readable addresses (the old /runs/ path redirects)."""
    urls = (f"/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job_id}/results", f"/jobs/{job_id}")
    statuses = [client.get(url, headers=headers).status_code for url in urls]
    return [*statuses, client.get(f"/runs/{job_id}", follow_redirects=True).status_code]


def test_a_private_job_reads_as_missing_to_everyone_but_its_submitters_and_admins(
    site: dict[str, Any],
) -> None:
    app, private, tokens = site["app"], site["private"], site["tokens"]
    stranger = app.test_client()
    assert _reads(stranger, private) == [404] * 4
    assert _reads(stranger, private, bearer(tokens["other"]))[:2] == [404, 404]
    assert _reads(_signed_in(app, "admin"), private) == [200] * 4
    assert _reads(stranger, private, bearer(tokens["admin"]))[:2] == [200, 200]
    assert _reads(stranger, private, bearer(tokens["dev"]))[:2] == [200, 200]
    assert _reads(_signed_in(app, "devweb"), private) == [200] * 4
    # A made-up token is not a way around it, nor a way in.
    made_up = stranger.get(f"/api/v1/jobs/{private}", headers=bearer("sabha_pat_nonsense"))
    assert made_up.status_code == 401 and made_up.mimetype == PROBLEM


def test_private_and_missing_jobs_get_the_same_answer(site: dict[str, Any]) -> None:
    client = site["app"].test_client()
    missing = 10_000
    for suffix in ("", "/results"):
        hidden = client.get(f"/api/v1/jobs/{site['private']}{suffix}")
        absent = client.get(f"/api/v1/jobs/{missing}{suffix}")
        assert hidden.status_code == absent.status_code == 404
        assert hidden.mimetype == absent.mimetype == PROBLEM
        assert hidden.get_json()["detail"].replace(str(site["private"]), "N") == (
            absent.get_json()["detail"].replace(str(missing), "N")
        )
    page = client.get(f"/jobs/{site['private']}").get_data(as_text=True)
    assert "unreleased-model" not in page


def test_walking_job_ids_finds_only_public_jobs(site: dict[str, Any]) -> None:
    client = site["app"].test_client()
    found = [n for n in range(1, 20) if client.get(f"/api/v1/jobs/{n}").status_code == 200]
    assert found == [site["public"]]
    assert b"unreleased-model" not in b"".join(
        client.get(f"/api/v1/jobs/{n}/results").get_data() for n in range(1, 20)
    )


def test_a_completed_job_is_public(site: dict[str, Any]) -> None:
    run_with(site["db"], [site["private"]], ScriptedEngine())
    assert finalize_job(site["db"], site["private"])
    assert _reads(site["app"].test_client(), site["private"]) == [200] * 4
