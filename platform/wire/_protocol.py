"""The lease protocol between a pool's agent and the platform: its version and messages."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import DbId, Message, WireTime
from ._generation import (
    ChatTemplatePolicy,
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    ModelSource,
)

__all__ = [
    "CANNOT_RUN_HERE",
    "MAX_LEASE_BATCH",
    "MAX_LEASE_WAIT_SECONDS",
    "LeaseBatch",
    "LeaseBatchRequest",
    "LeaseReceipt",
    "LeaseRelease",
    "LeaseRenewed",
    "LeaseToken",
    "OutcomeWord",
    "PoolCapabilities",
    "PoolInfo",
    "PoolRegistration",
    "PROTOCOL_HEADER",
    "ResultBatch",
    "ResultBatchReceipt",
    "ResultOutcome",
    "ResultRefusal",
    "PROTOCOL_VERSION",
    "ShardLease",
    "ShardResult",
    "SubmitReceipt",
    "protocol_refusal",
]

# How a pool's agent begins the reason of a lease it hands back because its
# hardware cannot run the model; the queue does not lease that shard to the
# pool again.
CANNOT_RUN_HERE = "cannot run here:"

# -- the lease protocol's version -------------------------------------------------------
# Agents send it in every call (header PROTOCOL_HEADER). A change an agent one minor
# version behind may ignore (a new optional field) bumps the minor version; any other
# change bumps the major. The platform serves agents of its major version from one minor
# version behind, and tells every other agent to upgrade.
PROTOCOL_VERSION = "1.2"
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


class ShardLease(Message):
    """A shard leased to one pool: what to run, and the token that proves the lease.

    ``memory_bytes`` is the platform's estimate of the memory the model needs
    (None: not estimated); the agent sizes the engine's tensor parallelism by it.
    ``benchmark`` names the benchmark the job was made for, so the agent can say
    what it is running (protocol 1.1; None from a 1.0 platform).
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
    benchmark: str | None = Field(default=None, max_length=200)


class ShardResult(Message):
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


# -- a pool, and the life of a lease ----------------------------------------------------


class PoolCapabilities(Message):
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


class PoolRegistration(Message):
    """An agent announcing its pool: a name (unique on the platform) and capabilities."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    capabilities: PoolCapabilities


class PoolInfo(Message):
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


class LeaseToken(Message):
    """The proof of a lease, for a heartbeat."""

    token: str = Field(min_length=1, max_length=200)


class LeaseRelease(Message):
    """A lease handed back, and why (shown on the job's page)."""

    token: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=500)


class LeaseRenewed(Message):
    """A heartbeat's answer: the lease's new deadline."""

    expires_at: WireTime


class LeaseReceipt(Message):
    """A release's answer."""

    released: bool


class SubmitReceipt(Message):
    """What became of a submitted result (``queue.SubmitOutcome``).

    ``verdict``: ``agreed`` once another owner's run and this one agree,
    ``disagreed`` or ``withdrawn`` when they did not count; None while the
    result is not compared (accepted on the pool's word, or waiting).
    """

    status: str
    duplicate: bool
    job_complete: bool
    verdict: str | None = None


# -- several results in one post (protocol 1.2) -------------------------------------------


OutcomeWord = Literal["accepted", "agreed", "waiting", "late", "disagreed", "refused"]


class ResultBatch(Message):
    """Several shard results in one post (protocol 1.2), each with its own lease's token.

    Each result is checked as a single post of it is (the lease must be the
    posting pool's own and the token its own); at most
    ``SABHA_MAX_RESULTS_PER_POST`` results, each run once, and the whole body
    within ``SABHA_MAX_RESULT_BYTES``.
    """

    results: list[ShardResult] = Field(min_length=1)


class ResultRefusal(Message):
    """Why one result of a batch was refused (nothing of it was stored).

    ``status`` and ``type`` are what a single post of the result would have
    been answered (403 ``about:blank``: another pool's lease;
    ``urn:sabha:problem:lease-lost``: an unknown run or a wrong token; ...).
    """

    status: int
    type: str
    detail: str
    fix: str | None = None


class ResultOutcome(Message):
    """What became of one result of a batch.

    ``outcome``: ``accepted`` (it counts), ``agreed`` (stored; it agreed with
    another owner's run, which counts: a verification), ``waiting`` (stored;
    it counts once another owner's pool agrees), ``late`` (stored; another run
    of the shard was accepted first), ``disagreed`` (stored; it disagreed with
    other owners' runs or was withdrawn, and does not count), or ``refused``
    (nothing stored; ``refusal`` says why, and posting it again cannot help).
    ``receipt`` is what a single post would have answered (None when refused).
    """

    run_id: int
    outcome: OutcomeWord
    receipt: SubmitReceipt | None = None
    refusal: ResultRefusal | None = None


class ResultBatchReceipt(Message):
    """A batch's answer: one outcome per posted result, in the order they were posted."""

    outcomes: list[ResultOutcome]


# -- batch leasing (protocol 1.2) -------------------------------------------------------

MAX_LEASE_BATCH = 1000
"""The most shards one batch request may ask for; the platform gives at most
``SABHA_LEASE_MAX_SHARDS`` of them (64 unless its operator changed it)."""

MAX_LEASE_WAIT_SECONDS = 20
"""The longest a batch request may wait for work (long-poll)."""


class LeaseBatchRequest(Message):
    """A pool asking for up to ``max_shards`` shards at once (``POST /api/v1/leases/batch``).

    ``wait_seconds``: when no shard is waiting, how long the platform may hold
    the request until one is (long-poll; 0 answers at once). ``job_ids``: only
    shards of these jobs (None: any job the pool may run). Protocol 1.2; a 1.1
    platform answers 404 and the agent leases one shard a call.
    """

    max_shards: int = Field(ge=1, le=MAX_LEASE_BATCH)
    wait_seconds: float = Field(default=0.0, ge=0.0, le=MAX_LEASE_WAIT_SECONDS)
    job_ids: list[DbId] | None = Field(default=None, min_length=1, max_length=1000)


class LeaseBatch(Message):
    """A batch request's answer: the shards leased, in queue order (none: no work).

    ``retry_after``: the platform had no room to hold the request while it
    waited for work (its long-poll waiters are all busy); ask again after this
    many seconds (also the ``Retry-After`` header). None otherwise.
    """

    leases: list[ShardLease]
    retry_after: int | None = Field(default=None, ge=0)
