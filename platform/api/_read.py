"""Public read operations: benchmarks, leaderboards, runs and job status (no sign-in)."""

from __future__ import annotations

from flask import Response
from pydantic import BaseModel, Field

from sabha.leaderboards.board import benchmark_summaries, leaderboard, run_details
from sabha.leaderboards.public import BenchmarkSummary, LeaderboardPage, RunPublic
from sabha.platform.db import get_session
from sabha.platform.services.status import JobStatusPublic, job_status
from sabha.platform.wire import MAX_DB_ID

from ._blueprint import TAGS, api, json_response

__all__ = ["BenchmarkList", "BenchmarkPath", "JobPath", "PageQuery"]


class BenchmarkList(BaseModel):
    """Every current benchmark with its number of ranked models."""

    benchmarks: list[BenchmarkSummary]


class BenchmarkPath(BaseModel):
    name: str = Field(
        description="The benchmark's name, e.g. kisan-advisory",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
    )


class PageQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=1_000_000, description="The page, from 1")


class JobPath(BaseModel):
    job_id: int = Field(ge=1, le=MAX_DB_ID, description="The job's id")


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
    return json_response(leaderboard(get_session(), path.name, query.page))


@api.get("/runs/<int:job_id>", tags=[TAGS["benchmarks"]], responses={200: RunPublic})
def get_run(path: JobPath) -> Response:
    """A run's provenance and scores.

    Dataset version, model revision, decoding, the pools that ran each shard,
    metric signatures and every score. Samples come from public splits only.
    """
    return json_response(run_details(get_session(), path.job_id))


@api.get("/jobs/<int:job_id>", tags=[TAGS["jobs"]], responses={200: JobStatusPublic})
def get_job(path: JobPath) -> Response:
    """A job's status with each shard's state.

    Shards are queued, leased, running, done, failed or cancelled; a shard
    whose last attempt stopped carries the reason.
    """
    return json_response(job_status(get_session(), path.job_id))
