"""Datasets in benchmark files: the card's text, the inline form, references and dataset files.

A benchmark's ``dataset:`` either carries the items inline (``DatasetSpec``)
or names a released version (``DatasetRef``, ``name@<content hash>``); a
dataset file (``DatasetFileSpec``) releases rows and card metadata without any
benchmark.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

from ._fields import (
    AttributeName,
    AttributeValue,
    Label,
    LanguageTag,
    License,
    NonEmpty,
    Slug,
    Strict,
    Title,
)

__all__ = [
    "BenchmarkDataset",
    "CardText",
    "DatasetFileSpec",
    "DatasetRef",
    "DatasetSpec",
    "check_labels_fit_task",
]

# The Hugging Face dataset-card vocabulary for how a dataset's text and
# annotations came about (https://huggingface.co/docs/hub/datasets-cards).
AnnotationsCreator = Literal[
    "found", "crowdsourced", "expert-generated", "machine-generated", "no-annotation", "other"
]
LanguageCreator = Literal["found", "crowdsourced", "expert-generated", "machine-generated", "other"]


def _check_source_dataset(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/|-]{0,199}", value):
        raise ValueError(
            f"{value[:40]!r} is not a source dataset; write 'original' for data made for this "
            "dataset, or 'extended|NAME' for one built on the dataset NAME (e.g. extended|flores)"
        )
    return value


SourceDataset = Annotated[str, AfterValidator(_check_source_dataset)]


class CardText(Strict):
    """The prose sections of a dataset's data card, and how its data was made.

    ``annotations_creators``, ``language_creators`` and ``source_datasets`` are
    the Hugging Face card metadata of those names. A card states only what is
    declared here (none of them when left out), so it never claims, say, expert
    work that nobody declared. ``corrections`` replaces the card's default
    paragraph on how a speaker proposes a correction.
    """

    summary: NonEmpty
    collection_process: NonEmpty
    intended_use: NonEmpty
    limitations: NonEmpty
    corrections: NonEmpty | None = None
    annotations_creators: list[AnnotationsCreator] = Field(default_factory=list)
    language_creators: list[LanguageCreator] = Field(default_factory=list)
    source_datasets: list[SourceDataset] = Field(
        default_factory=list, description="'original', or 'extended|<dataset>' and the like"
    )


class DatasetSpec(Strict):
    """Where a benchmark's items are and how they are licensed."""

    name: Slug
    items: NonEmpty = Field(description="Path of the JSONL items file, relative to the YAML file")
    license: License
    card: CardText


_DATASET_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9-]{1,62}[a-z0-9])@(?P<hash>[0-9a-f]{64})$")


class DatasetRef(Strict):
    """A released dataset version named ``name@<content hash>`` (64 hex digits)."""

    name: str
    content_hash: str

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        """Read ``name@hash``.

        Raises:
            ValueError: naming the expected form.
        """
        match = _DATASET_REF.match(text)
        if match is None:
            raise ValueError(
                f"{text[:80]!r} is not a dataset reference; write the released version as "
                "name@<64-hex content hash> (see `sabha datasets list`), or give the items inline "
                "with name, items, license and card"
            )
        return cls(name=match["name"], content_hash=match["hash"])

    def __str__(self) -> str:
        return f"{self.name}@{self.content_hash}"


def _dataset_ref(value: object) -> object:
    return DatasetRef.parse(value) if isinstance(value, str) else value


# Tags of the two forms of ``dataset:``; error paths leave them out (see ``_problems``).
INLINE_TAG, REF_TAG = "§inline", "§ref"


def _dataset_kind(value: object) -> str:
    return REF_TAG if isinstance(value, str | DatasetRef) else INLINE_TAG


# A benchmark's ``dataset:``: the items inline, or a released version as ``name@<hash>``.
BenchmarkDataset = Annotated[
    Annotated[DatasetSpec, Tag(INLINE_TAG)]
    | Annotated[DatasetRef, BeforeValidator(_dataset_ref), Tag(REF_TAG)],
    Discriminator(_dataset_kind),
]


def check_labels_fit_task(labels: list[str], task: str | None, kind: str) -> list[str]:
    """Refuse labels that do not fit the task of a ``kind`` ("dataset", "benchmark").

    A classification needs at least two distinct labels; a generation has none.

    Raises:
        ValueError: saying which, for the field validator to report.
    """
    if task == "classification" and len(set(labels)) < 2:
        raise ValueError(f"a classification {kind} needs at least two distinct labels")
    if task == "generation" and labels:
        raise ValueError(f"labels are only for classification {kind}s; remove them")
    return labels


class DatasetFileSpec(Strict):
    """A dataset file: rows and card metadata, released without any benchmark.

    Benchmarks then refer to the released version as ``name@<content hash>``.
    """

    name: Slug
    title: Title
    license: License
    task: Literal["generation", "classification"]
    languages: list[LanguageTag] = Field(min_length=1)
    labels: list[Label] = Field(default_factory=list)
    attributes: dict[AttributeName, list[AttributeValue]] = Field(default_factory=dict)
    items: NonEmpty = Field(description="Path of the JSONL items file, relative to this file")
    card: CardText

    @field_validator("labels")
    @classmethod
    def _labels_fit_task(cls, labels: list[str], info: ValidationInfo) -> list[str]:
        return check_labels_fit_task(labels, info.data.get("task"), "dataset")
