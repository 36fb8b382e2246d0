"""Datasets, their immutable versions and items, benchmarks and models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from sabha.platform.wire import HubModelSource, LocalModelSource, ModelSource

from .columns import json_column, text_column, when_column

__all__ = ["Dataset", "DatasetVersion", "Item", "Benchmark", "Model"]


class Dataset(SQLModel, table=True):
    """A named dataset; its content lives in immutable versions."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=100)
    title: str = Field(max_length=200)
    license: str = Field(max_length=50)
    created_at: datetime = when_column()


class DatasetVersion(SQLModel, table=True):
    """One version of a dataset, named by its dataset and the hash of its content.

    The same items under two dataset names are two versions, each with its
    own name, licence and card. Once ``released_at`` is set, neither the
    version nor its items may change.
    """

    __tablename__ = "dataset_version"
    __table_args__ = (
        sa.UniqueConstraint("dataset_id", "content_hash", name="uq_dataset_version_dataset_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    content_hash: str = Field(max_length=64, index=True)
    item_count: int
    languages: list[str] = json_column()
    artifact_uri: str | None = Field(default=None, max_length=1000)
    card_markdown: str | None = text_column(nullable=True)
    created_at: datetime = when_column()
    released_at: datetime | None = when_column(nullable=True)


class Item(SQLModel, table=True):
    """One evaluation item of a dataset version."""

    __table_args__ = (sa.UniqueConstraint("dataset_version_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True)
    key: str = Field(max_length=100)
    language: str = Field(max_length=35, index=True)
    dialect: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=10)
    split: str = Field(max_length=20)
    input: dict[str, Any] = json_column()
    reference: str | None = text_column(nullable=True)
    label: str | None = Field(default=None, max_length=100)
    attributes: dict[str, Any] = json_column()


class Benchmark(SQLModel, table=True):
    """One definition of a benchmark: a dataset version, how to generate, how to score.

    Two identities key the work: ``generation_hash`` (dataset version, prompt
    template, system prompt, decoding, chat-template policy, maximum model
    length) keys jobs, and ``scoring_hash`` (task, metrics, labels, answer
    extraction, breakdowns) keys scoring runs. Title, description and primary
    metric are presentation: changing them updates this row in place. The row
    with ``is_current`` is the definition the site shows for ``name``.
    """

    __table_args__ = (
        sa.UniqueConstraint("name", "version", name="uq_benchmark_name_version"),
        sa.UniqueConstraint(
            "name", "generation_hash", "scoring_hash", name="uq_benchmark_name_identities"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, max_length=100)
    version: str = Field(max_length=50)
    is_current: bool = True
    title: str = Field(max_length=200)
    description: str = text_column()
    task: str = Field(max_length=30)
    dataset_version_id: int = Field(foreign_key="dataset_version.id", index=True)
    prompt_template: str = text_column()
    system_prompt: str | None = text_column(nullable=True)
    chat_template: str = Field(default="auto", max_length=10)
    max_model_len: int = 2048
    labels: list[str] = json_column()
    answer: dict[str, Any] = json_column()
    metrics: list[str] = json_column()
    primary_metric: str = Field(max_length=30)
    breakdowns: list[str] = json_column()
    languages: list[str] = json_column()
    decoding: dict[str, Any] = json_column()
    generation_hash: str = Field(max_length=64, index=True)
    scoring_hash: str = Field(max_length=64, index=True)
    definition_hash: str = Field(unique=True, max_length=64)
    # The automatic judge (model, kind, rubric), or None; outside both identities.
    judge: dict[str, Any] | None = json_column(nullable=True)
    created_at: datetime = when_column()


class Model(SQLModel, table=True):
    """A model to evaluate: a hub repository at a pinned revision, or a local folder.

    ``as_source()`` gives where it loads from as every other part names it
    (``wire.ModelSource``); ``catalog.find_or_add_model`` registers a source.
    A local folder's ``revision`` is the digest of its files.
    """

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=200)
    source: str = Field(max_length=10)  # "hub" or "local"
    repo_id: str | None = Field(default=None, max_length=300)
    revision: str | None = Field(default=None, max_length=100)
    path: str | None = Field(default=None, max_length=1000)
    smoke_test: bool = False
    description: str | None = text_column(nullable=True)
    created_at: datetime = when_column()

    def as_source(self) -> ModelSource:
        """Where the model loads from, as submissions and leases name it."""
        if self.source == "local":
            return LocalModelSource(name=self.name, source="local", path=str(self.path))
        return HubModelSource(
            name=self.name, source="hub", repo_id=str(self.repo_id), revision=str(self.revision)
        )
