"""Typed messages that cross a process or network boundary.

Engine actors (Ray), the local pool and the HTTPS lease protocol speak these
models, and so do the JSON API's submissions and job statuses. This package
imports neither SQLModel nor Flask, nor the benchmarks package (tests check
it), so a volunteer's agent loads only pydantic with it.

``_base`` holds the two kinds of message (strict ``Message``, people's
``InputShape``), ids and times; ``_generation`` what an engine is asked and
answers: the one model source (``ModelSource``) and the one decoding
(``DecodingParams``, made from a benchmark's ``DecodingSpec`` and a
submission's ``DecodingOverrides``); ``_protocol`` the lease protocol, its
version and its messages; ``_api`` submissions and job statuses. Other
packages import only the names below.
"""

from ._api import (
    JobStatusPublic,
    ShardStateName,
    ShardStatePublic,
    SubmissionCreate,
    SubmissionJobPublic,
    SubmissionPublic,
    SubmissionStatusPublic,
)
from ._base import MAX_DB_ID, DbId, UtcTime, as_utc
from ._generation import (
    HUB_REPO_ID_PATTERN,
    MODEL_NAME_PATTERN,
    ChatTemplatePolicy,
    DecodingOverrides,
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
    HubModelSource,
    LocalModelSource,
    ModelSource,
)
from ._protocol import (
    CANNOT_RUN_HERE,
    MAX_LEASE_BATCH,
    MAX_LEASE_WAIT_SECONDS,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    LeaseBatch,
    LeaseBatchRequest,
    LeaseReceipt,
    LeaseRelease,
    LeaseRenewed,
    LeaseToken,
    OutcomeWord,
    PoolCapabilities,
    PoolInfo,
    PoolRegistration,
    ResultBatch,
    ResultBatchReceipt,
    ResultOutcome,
    ResultRefusal,
    ShardLease,
    ShardResult,
    SubmitReceipt,
    protocol_refusal,
)

__all__ = [
    "CANNOT_RUN_HERE",
    "HUB_REPO_ID_PATTERN",
    "MAX_DB_ID",
    "MAX_LEASE_BATCH",
    "MAX_LEASE_WAIT_SECONDS",
    "MODEL_NAME_PATTERN",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "ChatTemplatePolicy",
    "DbId",
    "DecodingOverrides",
    "DecodingParams",
    "EngineInfo",
    "GenerationRequest",
    "GenerationResult",
    "HubModelSource",
    "JobStatusPublic",
    "LeaseBatch",
    "LeaseBatchRequest",
    "LeaseReceipt",
    "LeaseRelease",
    "LeaseRenewed",
    "LeaseToken",
    "LocalModelSource",
    "ModelSource",
    "OutcomeWord",
    "PoolCapabilities",
    "PoolInfo",
    "PoolRegistration",
    "ResultBatch",
    "ResultBatchReceipt",
    "ResultOutcome",
    "ResultRefusal",
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
