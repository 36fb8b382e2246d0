"""The domain model: SQLModel tables shared by every part of Sabha.

Datasets and their immutable versions feed benchmarks; a job is one model on
one generation identity, cut into shards; a pool leases a shard as a shard
run, whose outputs count once the shard accepts that run; a scoring run scores
a job's accepted outputs under one scoring identity and owns its scores; the
leaderboard entries are the read model the site pages through.

Accounts: a user holds role grants, links to external identities (OpenID
Connect), personal access tokens and, as a volunteer, pool credentials
(OAuth2 clients) whose short-lived worker tokens lease work. A submission is
a user's request to evaluate a model on some benchmarks; it owns the jobs it
created through ``submission_job``. Secrets are stored only as hashes.

Annotation: a project per dataset and language in Label Studio, its source
items and the annotations synced from there. A judging project is such a
project whose tasks show a finished job's accepted outputs
(``judged_response``); its judgements become ``community_score`` rows.
"""

from __future__ import annotations

from .accounts import (
    AccessToken,
    Identity,
    PoolCredential,
    RoleGrant,
    User,
    WebSession,
    WorkerToken,
)
from .annotation import (
    Annotation,
    AnnotationAssignment,
    AnnotationProject,
    AnnotationReview,
    JudgedResponse,
    JudgingProject,
    LabelStudioAccount,
    SourceItem,
    WithdrawnItem,
)
from .columns import EnumText, UtcTime, as_utc, id_of, utcnow
from .datasets import Benchmark, Dataset, DatasetVersion, Item, Model
from .scores import (
    PEOPLE_JUDGE,
    CommunityScore,
    LeaderboardEntry,
    LeaderboardGeneration,
    OutputStat,
    Score,
    ScoringRun,
)
from .statuses import (
    PUBLIC_SPLITS,
    ROLE_SCOPES,
    AnnotationTaskType,
    CheckReason,
    JobStatus,
    JudgingKind,
    PoolKind,
    PoolStatus,
    ReviewVerdict,
    Role,
    RunStatus,
    RunVerdict,
    ShardStatus,
    SubmissionStatus,
    TokenScope,
)
from .submissions import Submission, SubmissionJob
from .work import Job, Output, Pool, Shard, ShardRun

__all__ = [
    "PEOPLE_JUDGE",
    "PUBLIC_SPLITS",
    "ROLE_SCOPES",
    "AccessToken",
    "Annotation",
    "AnnotationAssignment",
    "AnnotationProject",
    "AnnotationReview",
    "AnnotationTaskType",
    "Benchmark",
    "CheckReason",
    "CommunityScore",
    "Dataset",
    "DatasetVersion",
    "EnumText",
    "Identity",
    "Item",
    "Job",
    "JudgedResponse",
    "JudgingKind",
    "JudgingProject",
    "JobStatus",
    "LabelStudioAccount",
    "LeaderboardEntry",
    "LeaderboardGeneration",
    "Model",
    "Output",
    "OutputStat",
    "Pool",
    "PoolCredential",
    "PoolKind",
    "PoolStatus",
    "ReviewVerdict",
    "Role",
    "RoleGrant",
    "RunStatus",
    "RunVerdict",
    "Score",
    "ScoringRun",
    "Shard",
    "ShardRun",
    "ShardStatus",
    "SourceItem",
    "Submission",
    "SubmissionJob",
    "SubmissionStatus",
    "TokenScope",
    "User",
    "UtcTime",
    "WebSession",
    "WithdrawnItem",
    "WorkerToken",
    "as_utc",
    "id_of",
    "utcnow",
]
