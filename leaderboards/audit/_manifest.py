"""The manifest of an audit bundle (``manifest.json``): one shape for writing and reading.

Numbers are plain JSON numbers written with Python's shortest round-trip
``repr``, so a float read back is the very float that was published.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BUNDLE_KIND",
    "FORMAT_VERSION",
    "BundleManifest",
    "DatasetEntry",
    "HeldOutEntry",
    "JobEntry",
    "ModelEntry",
    "PrivateItemRow",
    "PublicItemRow",
    "PublishedScore",
    "ScoringEntry",
    "ScoringSpecEntry",
    "ShardEntry",
    "ShardRunEntry",
]

BUNDLE_KIND = "sabha.audit-bundle"
FORMAT_VERSION = 1


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoringSpecEntry(_Entry):
    """What decides the numbers: the scoring identity's inputs."""

    task: Literal["generation", "classification"]
    metrics: list[str]
    labels: list[str] = Field(default_factory=list)
    answer: dict[str, Any] = Field(default_factory=dict)
    breakdowns: list[str] = Field(default_factory=list)


class ScoringEntry(_Entry):
    """The scoring run: its identity, spec, signatures, bootstrap settings and counts."""

    id: int
    scoring_hash: str
    spec: ScoringSpecEntry
    signatures: dict[str, str]
    n_resamples: int = Field(ge=1)
    seed: int
    confidence: float = Field(gt=0, lt=1)
    min_items: int = Field(ge=1)
    items: int = Field(ge=0)
    failed_items: int = Field(ge=0)
    failure_reasons: dict[str, int]
    pools: list[str]
    created_at: str | None = None


class PublishedScore(_Entry):
    """One published score (a ``Score`` row) of the scoring run."""

    metric: str
    breakdown: str
    group: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    too_few: bool = False
    signature: str | None = None


class HeldOutEntry(_Entry):
    """The private held-out split: scored on the server, published as one aggregate."""

    breakdown: str
    group: str
    items: int = Field(ge=0)


class ModelEntry(_Entry):
    name: str
    source: str
    repo_id: str | None = None
    revision: str | None = None
    smoke_test: bool = False


class JobEntry(_Entry):
    """The job whose accepted outputs were scored, and the definitions that score it."""

    id: int
    status: str
    model: ModelEntry
    benchmarks: list[str]
    generation_hash: str
    generation: dict[str, Any]
    decoding: dict[str, Any]
    created_at: str | None = None
    finished_at: str | None = None


class DatasetEntry(_Entry):
    """The released dataset version the items come from (its card: ``card.md``)."""

    name: str
    license: str
    content_hash: str
    item_count: int
    languages: list[str]
    released_at: str | None = None


class ShardRunEntry(_Entry):
    """One run of a shard that returned results, and what replication made of it."""

    pool: str
    replica: int
    attempt: int
    status: str
    verdict: str | None = None
    check_reason: str | None = None
    counted: bool
    executed_on: dict[str, Any] = Field(default_factory=dict)


class ShardEntry(_Entry):
    index: int
    items: int
    server_only: bool
    runs: list[ShardRunEntry]


class BundleManifest(_Entry):
    """Everything in ``manifest.json``; ``files`` holds the SHA-256 of every other member."""

    kind: Literal["sabha.audit-bundle"]
    format_version: Literal[1]
    scoring_run: ScoringEntry
    scores: list[PublishedScore]
    held_out: HeldOutEntry | None = None
    job: JobEntry
    dataset: DatasetEntry
    shards: list[ShardEntry]
    files: dict[str, str]


class PublicItemRow(_Entry):
    """A line of ``items.jsonl``: an item of a public split with its accepted output."""

    id: str
    language: str
    region: str | None = None
    dialect: str | None = None
    split: str
    input: dict[str, Any]
    reference: str | None = None
    label: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)
    item_hash: str
    output: str
    error: str | None = None
    output_hash: str


class PrivateItemRow(_Entry):
    """A line of ``private_items.jsonl``: an item of a private split, as hashes only."""

    item_hash: str
    output_hash: str
