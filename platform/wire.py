"""Typed messages that cross a process or network boundary.

Engine actors (Ray), the local pool and the HTTPS lease protocol speak these
models, and so do the JSON API's submissions and job statuses. This module
imports neither SQLModel nor Flask (a test checks it), so a volunteer's worker
can use it without the platform's database code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, overload

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from sabha.platform.benchmarks import DecodingOverrides

__all__ = [
    "CANNOT_RUN_HERE",
    "ChatTemplatePolicy",
    "DbId",
    "MAX_DB_ID",
    "DecodingParams",
    "EngineInfo",
    "GenerationRequest",
    "GenerationResult",
    "HubModelSource",
    "JobStatusPublic",
    "LeaseReceipt",
    "LeaseRelease",
    "LeaseRenewed",
    "LeaseToken",
    "LocalModelSource",
    "ModelSource",
    "PoolCapabilities",
    "PoolInfo",
    "PoolRegistration",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "ShardLease",
    "ShardResult",
    "ShardStateName",
    "ShardStatePublic",
    "SubmissionCreate",
    "SubmissionJobPublic",
    "SubmissionPublic",
    "SubmissionStatusPublic",
    "SubmitReceipt",
    "UtcTime",
    "as_utc",
    "protocol_refusal",
]

ChatTemplatePolicy = Literal["auto", "never", "required"]
# How a pool's agent begins the reason of a lease it hands back because its
# hardware cannot run the model; the queue does not lease that shard to the
# pool again.
CANNOT_RUN_HERE = "cannot run here:"
MAX_TEXT_CHARS = 1_000_000

# -- the lease protocol's version -------------------------------------------------------
# Agents send it in every call (header PROTOCOL_HEADER). A change an agent one minor
# version behind may ignore (a new optional field) bumps the minor version; any other
# change bumps the major. The platform serves agents of its major version from one minor
# version behind, and tells every other agent to upgrade.
PROTOCOL_VERSION = "1.0"
PROTOCOL_HEADER = "Sabha-Protocol"


def protocol_refusal(agent: str | None, platform: str = PROTOCOL_VERSION) -> str | None:
    """Why a platform speaking ``platform`` will not serve an agent speaking ``agent``.

    Returns:
        None when it serves it: the same major version, and a minor version at most
        one behind (an agent ahead of the platform is served too: the platform sends
        nothing it does not know).
    """
    ours = _version(platform)
    assert ours is not None
    theirs = _version(agent) if agent else None
    if theirs is None:
        shown = f"{agent!r}" if agent else "none (an agent older than protocol versions)"
        return f"this platform speaks the lease protocol {platform}; the agent's version is {shown}"
    if theirs[0] != ours[0] or theirs[1] < ours[1] - 1:
        return (
            f"this platform speaks the lease protocol {platform}, and serves agents of "
            f"{ours[0]}.{max(ours[1] - 1, 0)} or newer; the agent speaks {agent}"
        )
    return None


def _version(text: str) -> tuple[int, int] | None:
    major, dot, minor = text.strip().partition(".")
    if not dot or not major.isdigit() or not minor.isdigit() or len(text) > 20:
        return None
    return int(major), int(minor)


MAX_DB_ID = 2**31 - 1
"""The largest id a database row can have (PostgreSQL ``integer``)."""
DbId = Annotated[int, Field(ge=0, le=MAX_DB_ID)]
"""An id of a database row: out-of-range numbers are refused like any bad field."""
# Times travel as RFC 3339 strings; everything else must arrive as its own JSON type.
WireTime = Annotated[datetime, Field(strict=False)]


class _Wire(BaseModel):
    """A message: unknown fields refused, and types strict (``false`` is no number,
    ``"5"`` no integer), so what a pool sends means one thing."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DecodingParams(_Wire):
    """How answers are generated: greedy by default, with a fixed seed.

    ``max_tokens_by_language`` holds a job's per-language budgets (a
    benchmark's ``decoding.budget``, measured with the model's tokenizer when
    the job was made): an item in one of those languages gets that many new
    tokens, any other item ``max_tokens``.
    """

    max_tokens: int = Field(default=64, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int = 0
    # Generate exactly max_tokens (throughput benchmarks); evaluations stop at EOS.
    ignore_eos: bool = False
    max_tokens_by_language: dict[
        Annotated[str, Field(max_length=35)], Annotated[int, Field(ge=1, le=32768)]
    ] = Field(default_factory=dict, max_length=500)

    def max_tokens_for(self, language: str | None) -> int:
        """The new-token budget of an item in ``language`` (None: ``max_tokens``)."""
        if language is None:
            return self.max_tokens
        return min(self.max_tokens, self.max_tokens_by_language.get(language, self.max_tokens))


class GenerationRequest(_Wire):
    """One item to answer: the user text (template already filled) and the system prompt.

    ``language`` (the item's tag) picks its budget of new tokens
    (``DecodingParams.max_tokens_for``).
    """

    item_id: DbId
    text: str = Field(max_length=MAX_TEXT_CHARS)
    system: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: str | None = Field(default=None, max_length=35)


class GenerationResult(_Wire):
    """The answer to one request, or the reason it could not be answered.

    ``error`` is a per-item error (prompt longer than the context, tokenizer
    failure): the item is recorded as failed with its reason and scored by
    the documented rule, and the rest of the shard goes on.
    """

    item_id: DbId
    prompt: str = Field(default="", max_length=MAX_TEXT_CHARS)
    text: str = Field(default="", max_length=MAX_TEXT_CHARS)
    finish_reason: str | None = Field(default=None, max_length=20)
    # Self-reported; the platform also refuses more than the job's max_tokens.
    num_tokens: int = Field(default=0, ge=0, le=1_000_000)
    error: str | None = Field(default=None, max_length=2000)


class EngineInfo(BaseModel):
    """Where and with what an engine runs, kept as the provenance of its outputs."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    host: str = ""
    python: str = ""
    vllm: str = ""
    torch: str = ""
    device: str = ""
    dtype: str = ""
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    cuda_graphs: bool = False
    chat_template: bool = False
    # GPUs the model was split across; its all-reduces change the numerics.
    tensor_parallel_size: int = 1
    ray_node_id: str | None = None
    ray_node_ip: str | None = None
    ray_version: str | None = None


class ModelSource(_Wire):
    """What to load: a local folder, or a hub repository at a pinned commit."""

    name: str
    source: Literal["local", "hub"]
    path: str | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def target(self) -> str:
        """The path or repository id vLLM loads."""
        return str(self.path) if self.source == "local" else str(self.repo_id)


class ShardLease(_Wire):
    """A shard leased to one pool: what to run, and the token that proves the lease.

    ``memory_bytes`` is the platform's estimate of the memory the model needs
    (None: not estimated); the agent sizes the engine's tensor parallelism by it.
    """

    run_id: int
    token: str
    job_id: int
    shard_id: int
    shard_index: int
    attempt: int
    replica: int
    expires_at: WireTime
    model: ModelSource
    max_model_len: int
    chat_template: ChatTemplatePolicy = "auto"
    decoding: DecodingParams
    requests: list[GenerationRequest]
    memory_bytes: int | None = Field(default=None, ge=0)


class ShardResult(_Wire):
    """A pool's answers to one leased shard: exactly one result per leased item.

    ``engine_seconds`` is the shard's share of its engine's busy time (the
    engine's time split among the shards in it by item count; on a one-GPU
    engine these are GPU-seconds); None from agents that do not measure it.
    """

    run_id: DbId
    token: str = Field(max_length=200)
    results: list[GenerationResult]
    executed_on: EngineInfo
    engine_seconds: float | None = Field(default=None, ge=0.0, le=30 * 86_400)


# -- the lease protocol between a volunteer's agent and the platform ---------------------


class PoolCapabilities(_Wire):
    """What a pool has, as its agent detected it when it registered.

    ``memory_bytes`` is the most one engine can hold: on GPUs, the memory vLLM
    may use on the most GPUs of one node a tensor-parallel engine can span
    (``memory_bytes_per_gpu`` × the largest of 1, 2, 4, 8 not above
    ``gpus_per_node`` × the memory fraction); on CPU, the memory the engine
    may use. Shards of a job whose memory estimate is larger are not leased
    to the pool. ``gpus_per_node`` is the GPU count of the pool's biggest
    node (0 on CPU, or from an agent that predates it).
    """

    device: Literal["cuda", "cpu"] = "cpu"
    gpus: int = Field(default=0, ge=0, le=4096)
    gpu_name: str = Field(default="", max_length=200)
    memory_bytes_per_gpu: int = Field(default=0, ge=0)
    total_memory_bytes: int = Field(default=0, ge=0)
    memory_bytes: int = Field(default=0, ge=0)
    engines: int = Field(default=1, ge=1, le=4096)
    vllm: str = Field(default="", max_length=50)
    dtype: str = Field(default="", max_length=20)
    driver: str = Field(default="", max_length=50)
    ray_nodes: int = Field(default=1, ge=1)
    gpus_per_node: int = Field(default=0, ge=0, le=4096)


class PoolRegistration(_Wire):
    """An agent announcing its pool: a name (unique on the platform) and capabilities."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    capabilities: PoolCapabilities


class PoolInfo(_Wire):
    """The platform's view of a registered pool.

    ``verifications_needed``: how many more of its results must be verified
    by other owners' pools before its results count without waiting for a
    replica (0: proven, or an older platform that does not say).
    """

    id: int
    name: str
    status: str
    reputation: float
    agreements: int
    disagreements: int
    verifications_needed: int = 0


class LeaseToken(_Wire):
    """The proof of a lease, for a heartbeat."""

    token: str = Field(min_length=1, max_length=200)


class LeaseRelease(_Wire):
    """A lease handed back, and why (shown on the job's page)."""

    token: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=500)


class LeaseRenewed(_Wire):
    """A heartbeat's answer: the lease's new deadline."""

    expires_at: WireTime


class LeaseReceipt(_Wire):
    """A release's answer."""

    released: bool


class SubmitReceipt(_Wire):
    """What became of a submitted result (``queue.SubmitOutcome``).

    ``verdict``: ``agreed`` once another owner's run and this one agree,
    ``disagreed`` or ``withdrawn`` when they did not count; None while the
    result is not compared (accepted on the pool's word, or waiting).
    """

    status: str
    duplicate: bool
    job_complete: bool
    verdict: str | None = None


# -- submissions and job statuses: what a model developer sends and reads back -----------

ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
BenchmarkName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
JobStatusName = Literal["queued", "running", "completed", "failed", "cancelled"]
ShardStateName = Literal["queued", "leased", "running", "done", "failed", "cancelled"]


@overload
def as_utc(moment: datetime) -> datetime: ...
@overload
def as_utc(moment: None) -> None: ...
def as_utc(moment: datetime | None) -> datetime | None:
    """A stored time as timezone-aware UTC (SQLite hands back naive datetimes; Sabha stores UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


UtcTime = Annotated[datetime, AfterValidator(as_utc)]
"""A time in an API shape: always timezone-aware UTC, whatever the database handed back."""


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HubModelSource(_Input):
    """A model on the hub, pinned to one commit."""

    source: Literal["hub"]
    repo_id: Annotated[
        str,
        StringConstraints(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$"
        ),
    ] = Field(description="The repository, e.g. meta-llama/Llama-3.2-1B")
    revision: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")] = Field(
        description="The full 40-character commit SHA"
    )
    name: ModelName | None = Field(default=None, description="The name on leaderboards")


class LocalModelSource(_Input):
    """A model folder on the server (only where SABHA_ALLOW_LOCAL_MODELS is set)."""

    source: Literal["local"]
    path: str = Field(min_length=1, max_length=1000, description="An absolute folder path")
    name: ModelName | None = Field(default=None, description="The name on leaderboards")


class SubmissionCreate(_Input):
    """What a model developer submits."""

    model: HubModelSource | LocalModelSource = Field(discriminator="source")
    benchmarks: list[BenchmarkName] = Field(
        min_length=1, max_length=20, description="Benchmark names, e.g. kisan-advisory"
    )
    decoding: DecodingOverrides = Field(
        default_factory=DecodingOverrides,
        description="Overrides within the benchmark's bounds; any override is another "
        "generation identity, scored but not ranked beside the benchmark's own runs",
    )
    license: str = Field(min_length=1, max_length=50, description="The model's license")


class ShardStatePublic(BaseModel):
    """One shard of a job as its owner sees it."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="The shard's position in the job, from 0")
    items: int = Field(description="How many items it holds")
    state: ShardStateName
    attempts: int = Field(description="How many times a pool leased it")
    pool: str | None = Field(
        default=None, description="The pool holding it now, or whose results count"
    )
    reason: str | None = Field(
        default=None, description="Why the last attempt stopped, or why the job failed"
    )


class JobStatusPublic(BaseModel):
    """A job (one model on one benchmark) with each shard's state."""

    model_config = ConfigDict(frozen=True)

    id: int
    model: str
    benchmark: str
    status: JobStatusName
    reason: str | None = Field(default=None, description="Why the job failed, if it did")
    created_at: UtcTime | None
    started_at: UtcTime | None
    finished_at: UtcTime | None
    shards: int
    completed_shards: int
    items: int
    completed_items: int
    run_url: str | None = Field(default=None, description="The provenance page of the finished run")
    shard_states: list[ShardStatePublic]


class SubmissionJobPublic(BaseModel):
    """One benchmark of a submission and its job."""

    model_config = ConfigDict(frozen=True)

    benchmark: str
    job_id: int
    status: JobStatusName


class SubmissionPublic(BaseModel):
    """A submission as its owner sees it."""

    model_config = ConfigDict(frozen=True)

    id: int
    model: str
    status: JobStatusName
    reason: str | None = None
    license: str
    benchmarks: list[str]
    decoding: dict[str, Any]
    estimate_bytes: int | None
    counts_against_quota: bool
    created_at: datetime
    finished_at: datetime | None = None
    status_url: str
    jobs: list[SubmissionJobPublic]


class SubmissionStatusPublic(SubmissionPublic):
    """A submission with each job's shard states."""

    job_states: list[JobStatusPublic] = Field(
        description="Per benchmark: the job and each shard's state"
    )
