"""Public read operations: benchmarks, leaderboards, runs and job status (no sign-in).

Runs and jobs of a submission stay private to its submitters and admins until
the job completes (``services.status``): others get 404, as for a missing id.
A caller shows who they are by a personal access token or the session cookie.
"""

from __future__ import annotations

from flask import Response, request
from pydantic import BaseModel, Field

from sabha.leaderboards.board import (
    benchmark_summaries,
    dataset_page,
    language_page,
    language_summaries,
    leaderboard,
    model_page,
    run_details,
)
from sabha.leaderboards.public import (
    BenchmarkSummary,
    DatasetPage,
    LanguagePage,
    LanguageSummary,
    LeaderboardPage,
    ModelPage,
    RunPublic,
)
from sabha.leaderboards.web import cached_page, cached_view
from sabha.platform.db import get_session
from sabha.platform.domain import Role, TokenScope
from sabha.platform.services.audit_bundle import audit_bundle_of_job
from sabha.platform.services.status import check_run_visible, visible_job_status
from sabha.platform.web import current_roles, current_user
from sabha.platform.wire import MAX_DB_ID, JobStatusPublic

from ._auth import optional_caller
from ._blueprint import TAGS, api, json_response

__all__ = [
    "AuditBundleQuery",
    "BenchmarkList",
    "BenchmarkPath",
    "DatasetPath",
    "JobPath",
    "LanguageList",
    "LanguagePath",
    "LanguageQuery",
    "ModelPath",
    "PageQuery",
]


class BenchmarkList(BaseModel):
    """Every current benchmark with its number of ranked models."""

    benchmarks: list[BenchmarkSummary]


class BenchmarkPath(BaseModel):
    name: str = Field(
        description="The benchmark's name, e.g. kisan-advisory",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    )


class DatasetPath(BaseModel):
    name: str = Field(
        description="The dataset's name, e.g. kisan-advisory",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    )


class LanguageList(BaseModel):
    """Every language some current benchmark measures."""

    languages: list[LanguageSummary]


class LanguagePath(BaseModel):
    tag: str = Field(
        description="A BCP 47 language tag as benchmarks use it, e.g. sw-Latn",
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,4}$",
        max_length=35,
    )


class LanguageQuery(BaseModel):
    benchmark: str | None = Field(
        default=None,
        description="Only this benchmark's models in the language, a page at a time "
        "(default: every benchmark's best 10)",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    )
    page: int = Field(
        default=1, ge=1, le=1_000_000, description="The page of that benchmark's, from 1"
    )


class ModelPath(BaseModel):
    name: str = Field(
        description="The model's name on leaderboards, e.g. tiny-llama-a",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$",
    )


class PageQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=1_000_000, description="The page, from 1")


class JobPath(BaseModel):
    job_id: int = Field(ge=1, le=MAX_DB_ID, description="The job's id")


class AuditBundleQuery(BaseModel):
    scoring_run: int | None = Field(
        default=None,
        ge=1,
        le=MAX_DB_ID,
        description="One of the job's scoring runs (default: the one its page shows)",
    )


@api.get("/benchmarks", tags=[TAGS["benchmarks"]], responses={200: BenchmarkList})
def list_benchmarks() -> Response:
    """List benchmarks.

    Every current benchmark definition with its dataset, identities and the
    number of ranked models.
    """
    return json_response(BenchmarkList(benchmarks=benchmark_summaries(get_session())))


@api.get(
    "/benchmarks/<name>/leaderboard", tags=[TAGS["benchmarks"]], responses={200: LeaderboardPage}
)
def get_leaderboard(path: BenchmarkPath, query: PageQuery) -> Response:
    """A page of a benchmark's leaderboard.

    Ranked models, best first, each score with its 95% confidence interval;
    models the paired bootstrap cannot tell apart share a rank.
    """
    body = cached_page(
        "json",
        path.name,
        query.page,
        lambda: leaderboard(get_session(), path.name, query.page).model_dump_json(),
    )
    return Response(body, mimetype="application/json")


@api.get("/datasets/<name>", tags=[TAGS["benchmarks"]], responses={200: DatasetPage})
def get_dataset(path: DatasetPath) -> Response:
    """A dataset's released versions.

    Newest first, each with its items per public split and language (a
    private held-out split only as a total), the current benchmarks that
    measure on it, its card and, where this server has it, its public Parquet file.
    """
    return json_response(dataset_page(get_session(), path.name))


@api.get("/languages", tags=[TAGS["benchmarks"]], responses={200: LanguageList})
def list_languages() -> Response:
    """List languages.

    Every language tag some current benchmark measures, with its English
    name, its autonym, its script's direction and how many benchmarks have it.
    """
    return json_response(LanguageList(languages=language_summaries(get_session())))


@api.get("/languages/<tag>", tags=[TAGS["benchmarks"]], responses={200: LanguagePage})
def get_language(path: LanguagePath, query: LanguageQuery) -> Response:
    """The best models for one language.

    On every current benchmark that measures the language: the models scored
    in it, best first (the best 10 of each; with ``benchmark``, all of that
    one's, 50 a page), each with its 95% interval; models whose intervals
    overlap share a rank.
    """
    body = cached_view(
        "json-language",
        (path.tag, query.benchmark, query.page),
        lambda: language_page(
            get_session(), path.tag, query.benchmark, query.page
        ).model_dump_json(),
    )
    return Response(body, mimetype="application/json")


@api.get("/models/<name>", tags=[TAGS["benchmarks"]], responses={200: ModelPage})
def get_model(path: ModelPath) -> Response:
    """A model's ranks and scores on every current benchmark.

    Its primary score with the 95% interval on each benchmark, per language,
    and its other revisions. Only models with a published score exist here.
    """
    body = cached_view(
        "json-model", (path.name,), lambda: model_page(get_session(), path.name).model_dump_json()
    )
    return Response(body, mimetype="application/json")


# Anyone, or a personal access token (which may show a submitter their private jobs).
_OPTIONAL_TOKEN: list[dict[str, list[str]]] = [{}, {"personalAccessToken": []}]


def _viewer() -> tuple[int | None, bool]:
    """Who asks (user id, acts as admin): by token when one is sent, else by cookie."""
    caller = optional_caller()
    if caller is not None:
        return caller.user_id, TokenScope.ADMIN.value in caller.scopes
    user = current_user()
    if user is None:
        return None, False
    return user.id, Role.ADMIN in current_roles()


@api.get(
    "/jobs/<int:job_id>/results",
    tags=[TAGS["benchmarks"]],
    security=_OPTIONAL_TOKEN,
    responses={200: RunPublic},
)
def get_job_results(path: JobPath) -> Response:
    """A finished job's provenance and scores (``/api/v1/runs/<id>`` of earlier releases).

    Dataset version, model revision, decoding, the pools that ran each shard,
    metric signatures and every score. Samples come from public splits only.
    A submission's run is shown only to its submitter (and admins) until it
    completes; to anyone else it does not exist (404).
    """
    session = get_session()
    check_run_visible(session, path.job_id, *_viewer())
    return json_response(run_details(session, path.job_id))


@api.get(
    "/jobs/<int:job_id>",
    tags=[TAGS["jobs"]],
    security=_OPTIONAL_TOKEN,
    responses={200: JobStatusPublic},
)
def get_job(path: JobPath) -> Response:
    """A job's status with each shard's state.

    Shards are queued, leased, running, done, failed or cancelled; a shard
    whose last attempt stopped carries the reason. A submission's job is shown
    only to its submitter (and admins) until it completes; to anyone else it
    does not exist (404).
    """
    return json_response(visible_job_status(get_session(), path.job_id, *_viewer()))


_ZIP = {"application/zip": {"schema": {"type": "string", "format": "binary"}}}


@api.get(
    "/jobs/<int:job_id>/audit-bundle",
    tags=[TAGS["benchmarks"]],
    security=_OPTIONAL_TOKEN,
    responses={
        200: {"description": "The audit bundle (a zip archive)", "content": _ZIP},
        304: {"description": "Not modified (the ETag matches)"},
    },
)
def get_audit_bundle(path: JobPath, query: AuditBundleQuery) -> Response:
    """The audit bundle of a job's scoring run, to check its numbers with `sabha audit`.

    A zip archive: the published scores, metric signatures, bootstrap seed
    and settings, the job and the pools and replicas that agreed, the
    dataset version's card, and every public item with its accepted output
    and hashes. Items of a private split are in it as hashes only. Its ETag
    is the archive's SHA-256. Visible to whoever may see the job (404
    otherwise, as for a missing id).
    """
    session = get_session()
    check_run_visible(session, path.job_id, *_viewer())
    bundle = audit_bundle_of_job(session, path.job_id, query.scoring_run)
    response = Response(bundle.data, mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{bundle.filename}"'
    # Revalidate each time: a private job's bundle is its submitter's, and a rescored run differs.
    response.headers["Cache-Control"] = "private, no-cache"
    response.set_etag(bundle.sha256)
    response.make_conditional(request)
    return response
