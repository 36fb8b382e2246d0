"""Data cards in the Hugging Face dataset-card format, generated from dataset releases."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData

from sabha.platform.benchmarks import DatasetContent, ItemSpec, LoadedBenchmark
from sabha.platform.domain import PUBLIC_SPLITS
from sabha.platform.errors import ValidationFailed
from sabha.platform.languages import autonym, describe_language, describe_region, primary_subtag

__all__ = [
    "REQUIRED_SECTIONS",
    "AgreementRow",
    "AnnotationFacts",
    "build_data_card",
    "card_path",
    "validate_data_card",
]

REQUIRED_SECTIONS = (
    "Dataset summary",
    "Languages",
    "Dataset structure",
    "Collection process",
    "Intended use",
    "Limitations",
    "How to propose a correction",
    "License",
)
_LICENSE_IDS = {"CC-BY-4.0": "cc-by-4.0", "CC-BY-SA-4.0": "cc-by-sa-4.0", "CC0-1.0": "cc0-1.0"}


@dataclass(frozen=True)
class AgreementRow:
    """One line of a card's agreement table: a field's agreement in one language."""

    language: str
    field: str
    statistic: str  # "krippendorff_alpha" or "chrf"
    value: float | None
    items: int
    note: str | None = None


@dataclass(frozen=True)
class AnnotationFacts:
    """How an annotated release came about: what its card reports beyond the items.

    Counts only, never names: the card says how many people annotated and
    reviewed, not who.
    """

    task_type: str
    annotations_per_item: int
    annotators: int
    reviewers: int
    annotations: int
    agreement: Sequence[AgreementRow]
    left_out: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    gold_rule: str = ""
    version_note: str = ""
    superseded: int = 0
    fewest_annotators: int | None = None


def _annotation_section(facts: AnnotationFacts) -> str:
    rows = "\n".join(
        f"| `{r.language}` | {r.field} | "
        f"{'Krippendorff alpha' if r.statistic == 'krippendorff_alpha' else 'chrF (pairwise)'} | "
        f"{'—' if r.value is None else f'{r.value:.3f}'} | {r.items} |"
        + (f" {r.note} |" if r.note else " |")
        for r in facts.agreement
    )
    left = [
        f"{language}: {count} ({reason})"
        for language, reasons in sorted(facts.left_out.items())
        for reason, count in sorted(reasons.items())
    ]
    note = f"\n\nVersion note: {facts.version_note}" if facts.version_note else ""
    fewest = (
        f" Every released item carries the votes of at least {facts.fewest_annotators} "
        "different people."
        if facts.fewest_annotators is not None
        else ""
    )
    superseded = (
        f" {facts.superseded} earlier annotation(s) replaced by the same person's later one "
        "are not counted."
        if facts.superseded
        else ""
    )
    return f"""### Annotation

Annotated in Label Studio through Sabha ({facts.task_type} task): items were handed
to {facts.annotations_per_item} different annotators each, and reviewers accepted or
rejected annotations. Each person has one vote per item (their latest annotation of
it). {facts.annotations} votes by {facts.annotators} annotator(s), reviewed by
{facts.reviewers} reviewer(s).{fewest}{superseded}

{facts.gold_rule}

Items left out: {"; ".join(left) if left else "none"}.

| language | field | statistic | agreement | items |  |
|---|---|---|---|---|---|
{rows}{note}
"""


def _regions_and_dialects(items: Sequence[ItemSpec]) -> str:
    """What the items' region and dialect tags are, counted: the card states what the data holds."""
    regions = Counter(item.region for item in items if item.region)
    untagged = len(items) - sum(regions.values())
    if regions:
        listed = "; ".join(
            f"`{code}` {describe_region(code)}"
            + ("" if "-" in code else " (the whole country)")
            + f": {n}"
            for code, n in sorted(regions.items())
        )
        region_text = (
            "Region tags are ISO 3166-2 subdivisions (`IN-UP`) or ISO 3166-1 countries (`KE`), "
            f"with the number of items: {listed}. {untagged} of {len(items)} items have no "
            "region tag."
        )
    else:
        region_text = "No item has a region tag."
    dialects = Counter((item.language, item.dialect) for item in items if item.dialect)
    if dialects:
        dialect_text = (
            "Dialect tags: "
            + "; ".join(f"{d} (`{lang}`): {n}" for (lang, d), n in sorted(dialects.items()))
            + f". {len(items) - sum(dialects.values())} items have no dialect tag."
        )
    else:
        dialect_text = "No item has a dialect tag."
    return f"{region_text}\n\n{dialect_text}"


def _default_corrections(data_set: DatasetContent, input_fields: Sequence[str]) -> str:
    """How a speaker proposes a correction, through Sabha's own annotation flow."""
    project_name = f"{data_set.name}-corrections"
    if data_set.task == "generation":
        source = f"`{input_fields[0]}`" if len(input_fields) == 1 else "input"
        project = (
            f"a post-editing project for the language (`sabha annotations create {project_name} "
            "--language TAG --task post_edit`, with `--instructions` saying that the draft is "
            f"the current reference answer), whose rows carry the item's `id`, its {source} as "
            "`source` and its reference as `draft`"
        )
        what = "correct the reference answer (or leave a correct one as it is)"
        takes = "the edit a reviewer accepted"
    elif set(data_set.labels) == {"safe", "unsafe"} and "hazard" in data_set.attributes:
        project = (
            f"a labelling project for the language (`sabha annotations create {project_name} "
            "--language TAG --task label`, with each hazard category as `--hazard`), whose "
            "rows carry the item's `id` and its text as `text`"
        )
        what = "label the item afresh, without seeing its current label"
        takes = "the label chosen by a strict majority of the annotations no reviewer rejected"
    else:
        project = (
            f"a project for the language (`sabha annotations create {project_name} "
            "--language TAG --task TYPE`, the task type that fits the items)"
        )
        what = "answer or label each item afresh"
        takes = "what the annotations agreed on"
    return (
        "Released items never change: a correction becomes a new dataset version with its "
        "own content hash, and the benchmarks that use it move to that version with a new "
        "`version:`. Corrections go through Sabha's annotation flow. The maintainers open "
        f"{project}, then `sabha annotations upload` and `sabha annotations provision` to "
        "open it in Label Studio. A speaker with the annotator role signs in to Sabha, "
        "opens `/annotate`, saves the languages they speak, and Join takes them to the "
        f"project in Label Studio, where they {what}. Each item is annotated by several "
        f"people, and `sabha annotations release` takes {takes}, once the release gates "
        "pass; the maintainers carry the accepted corrections into the dataset file, "
        "and the new version's card says what changed. Where no project is open for your "
        "language, ask the maintainers of the Sabha server to open one."
    )


def card_path(data_cards_dir: Path, dataset_name: str) -> Path:
    """Where a dataset's card lives: ``data_cards/<name>/README.md`` (the Hub's layout)."""
    return data_cards_dir / dataset_name / "README.md"


def _size_category(n: int) -> str:
    return "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K"


def build_data_card(
    source: DatasetContent | LoadedBenchmark, *, annotation: AnnotationFacts | None = None
) -> DatasetCard:
    """Build the data card of a dataset version (from a dataset file or a benchmark's items).

    Only public items are described; items of a private held-out split are
    counted in one sentence, never shown. ``annotation`` adds how the items
    were annotated and the agreement table.
    """
    data_set = source.dataset if isinstance(source, LoadedBenchmark) else source
    items = [item for item in data_set.items if item.split in PUBLIC_SPLITS]
    held_out = len(data_set.items) - len(items)
    benchmark = data_set.benchmark
    counts = Counter((item.language, item.split) for item in items)
    regions: dict[str, set[str]] = {}
    for item in items:
        if item.region:
            regions.setdefault(item.language, set()).add(item.region)
    data = DatasetCardData(
        pretty_name=data_set.title,
        language=sorted({primary_subtag(tag) for tag in data_set.languages}),
        language_details=", ".join(data_set.languages),
        license=_LICENSE_IDS.get(data_set.license, data_set.license.lower()),
        multilinguality="multilingual" if len(data_set.languages) > 1 else "monolingual",
        size_categories=[_size_category(len(items))],
        task_categories=[
            "text-generation" if data_set.task == "generation" else "text-classification"
        ],
        # Only what the dataset declares (or what Sabha's own annotation flow did):
        # a card never claims expert work, or an origin, that nobody declared.
        annotations_creators=(
            ["crowdsourced"] if annotation else list(data_set.card.annotations_creators) or None
        ),
        language_creators=list(data_set.card.language_creators) or None,
        source_datasets=list(data_set.card.source_datasets) or None,
        tags=["sabha", f"sabha-benchmark-{benchmark.name}" if benchmark else "sabha-dataset"],
    )
    splits = sorted({item.split for item in items})
    language_rows = "\n".join(
        f"| `{tag}` | {describe_language(tag)} | {autonym(tag)} | "
        + " | ".join(str(counts[(tag, split)]) for split in splits)
        + f" | {', '.join(sorted(regions.get(tag, ()))) or '—'} |"
        for tag in data_set.languages
    )
    fields = [
        "`id`",
        "`language` (BCP-47 with script)",
        "`region` (ISO 3166-2 subdivision or ISO 3166-1 country, optional)",
        "`dialect` (optional)",
        "`split`",
    ]
    inputs = dict.fromkeys(name for item in items for name in item.input)  # every item's
    fields += [f"`{name}` (input)" for name in inputs]
    fields += (
        ["`reference` (reference answer)"]
        if data_set.task == "generation"
        else [f"`label` ({' / '.join(data_set.labels)})"]
    )
    fields += [f"`{name}` ({', '.join(values)})" for name, values in data_set.attributes.items()]
    task_line = (
        f"Benchmark `{benchmark.name}`: {benchmark.task} task, metrics "
        f"{', '.join(benchmark.metrics)} (primary: {benchmark.primary_metric})."
        if benchmark
        else f"Released as a dataset for {data_set.task} benchmarks, which refer to it as "
        f"`{data_set.name}@<version>`."
    )
    held_out_line = (
        f"\n{held_out} further items are a private held-out split: kept on the server "
        "for evaluation, never published.\n"
        if held_out
        else ""
    )
    annotation_text = f"\n{_annotation_section(annotation)}" if annotation else ""
    corrections = data_set.card.corrections or _default_corrections(data_set, list(inputs))
    content = f"""---
{data.to_yaml()}
---

<!-- Generated by `sabha cards build` from {data_set.source}; edit that file, not this one. -->

# {data_set.title}

## Dataset summary

{data_set.card.summary}

{task_line}

## Languages

| tag | language | autonym | {" | ".join(splits)} | regions |
|---|---|---|{"---|" * len(splits)}---|
{language_rows}

{_regions_and_dialects(items)}

## Dataset structure

{len(items)} items, one row each, with the fields: {", ".join(fields)}.

Dataset version `{data_set.content_hash}` (SHA-256 of the items' canonical JSON).
{held_out_line}
## Collection process

{data_set.card.collection_process}
{annotation_text}
## Intended use

{data_set.card.intended_use}

## Limitations

{data_set.card.limitations}

## How to propose a correction

{corrections}

## License

{data_set.license}.
"""
    return DatasetCard(content)


def validate_data_card(text: str, where: str = "data card") -> DatasetCard:
    """Parse a data card and check its metadata and sections.

    Raises:
        ValidationFailed: metadata or sections are missing.
    """
    problems = []
    try:
        card = DatasetCard(text)
    except Exception as exc:  # the Hub's parser raises several types for bad YAML
        raise ValidationFailed(f"{where} cannot be parsed.", [str(exc)]) from exc
    metadata = card.data.to_dict()
    if not metadata.get("license"):
        problems.append(f"{where}: metadata field 'license' is missing")
    if not metadata.get("language"):
        problems.append(f"{where}: metadata field 'language' is missing")
    for section in REQUIRED_SECTIONS:
        if f"\n## {section}\n" not in card.text:
            problems.append(f"{where}: section '## {section}' is missing")
    if problems:
        raise ValidationFailed(f"{where} is incomplete.", problems)
    return card
