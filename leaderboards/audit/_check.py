"""Check an audit bundle: its hashes and counts, and every public number recomputed.

The numbers are recomputed by the same functions that published them
(``score_from_item_stats`` and ``score_items``, on sacrebleu's statistics),
with the run's bootstrap seed, resamples and minimum group size, over the
public items in the bundle's order: the same inputs give the same floats,
so a number matches only when it is equal, not close.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from sabha.platform.benchmarks import AnswerSpec, scoring_identity

from ..bootstrap import DEFAULT_CONFIDENCE
from ..parallel_stats import item_stats_parallel
from ..scoring import ScoredItem, ScoreRow, failure_reason, score_from_item_stats, score_items
from ._format import ITEM_FIELDS, AuditBundle, item_hash, item_line, output_hash, sha256_hex
from ._manifest import PublicItemRow, PublishedScore

__all__ = ["MATCH", "MISMATCH", "PRIVATE", "AuditReport", "NumberCheck", "audit_bundle"]

MATCH = "match"
MISMATCH = "MISMATCH"
PRIVATE = "not recomputable (private split), hashes only"


@dataclass(frozen=True)
class NumberCheck:
    """One published number (metric, breakdown, group) and what the audit made of it.

    ``published`` is None for a number the audit computes that was not
    published; ``recomputed`` is None for a published number it cannot find
    (or, with ``status == PRIVATE``, cannot compute).
    """

    metric: str
    breakdown: str
    group: str
    published: PublishedScore | None
    recomputed: ScoreRow | None
    status: str


@dataclass(frozen=True)
class AuditReport:
    """What ``sabha audit`` prints.

    Attributes:
        checks: Every published number, and any recomputed one not published.
        problems: Each a reason the bundle does not match (a changed output, a
            hash, a count); the bundle matches only when there are none.
        notes: Worth knowing, not a mismatch (a metric signature from another
            sacrebleu version, what could not be checked).
    """

    checks: list[NumberCheck]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def mismatched(self) -> list[NumberCheck]:
        """The numbers that do not match."""
        return [check for check in self.checks if check.status == MISMATCH]

    @property
    def matches(self) -> bool:
        """Whether every public number matched and every hash and count checked out."""
        return not self.problems and not self.mismatched


def _fields(row: PublicItemRow) -> dict[str, object]:
    """The item's own fields, as its hashes cover them."""
    return {name: getattr(row, name) for name in ITEM_FIELDS}


def _file_problems(bundle: AuditBundle) -> list[str]:
    problems = []
    for name, digest in sorted(bundle.manifest.files.items()):
        data = bundle.members.get(name)
        if data is None:
            problems.append(f"{name} is missing from the archive")
        elif sha256_hex(data) != digest:
            problems.append(f"{name} does not match its SHA-256 in manifest.json (it was changed)")
    return problems


def _item_problems(bundle: AuditBundle) -> list[str]:
    problems = []
    seen: set[str] = set()
    for row in bundle.items:
        fields = _fields(row)
        if row.id in seen:
            problems.append(f"item {row.id!r} appears twice in items.jsonl")
        seen.add(row.id)
        if item_hash(fields) != row.item_hash:
            problems.append(f"item {row.id!r}: its fields do not match its item_hash (changed)")
        if output_hash(fields, row.output, row.error) != row.output_hash:
            problems.append(f"item {row.id!r}: its output does not match its output_hash (changed)")
    return problems


def _count_problems(bundle: AuditBundle) -> list[str]:
    run, held_out = bundle.manifest.scoring_run, bundle.manifest.held_out
    problems = []
    spec = run.spec
    identity = scoring_identity(
        spec.task, list(spec.metrics), list(spec.labels), dict(spec.answer), list(spec.breakdowns)
    )
    if identity != run.scoring_hash:
        problems.append(
            f"the scoring spec gives scoring identity {identity}, not the run's {run.scoring_hash}"
        )
    if run.items != len(bundle.items):
        problems.append(
            f"the run scored {run.items} public items; items.jsonl has {len(bundle.items)}"
        )
    failures = Counter(failure_reason(row.error) for row in bundle.items if row.error)
    if run.failed_items != sum(failures.values()) or run.failure_reasons != dict(failures):
        problems.append(
            f"the run counted failed items {run.failure_reasons or {}}; "
            f"items.jsonl has {dict(failures)}"
        )
    private = len(bundle.private_items)
    scored = {held_out.items} if held_out else {0}
    if held_out:  # each held-out score's n counts the private items too
        scored |= {s.n for s in bundle.manifest.scores if s.breakdown == held_out.breakdown}
    if scored != {private}:
        problems.append(
            f"the run scored {', '.join(map(str, sorted(scored)))} private items; "
            f"private_items.jsonl has {private}"
        )
    return problems


def _dataset_check(bundle: AuditBundle) -> tuple[list[str], list[str]]:
    """(problems, notes) of the dataset version's content hash, where it can be checked."""
    dataset = bundle.manifest.dataset
    if bundle.private_items:
        return [], [
            f"dataset version {dataset.content_hash[:12]}: not checked, its hash also "
            "covers the private items"
        ]
    if len(bundle.items) != dataset.item_count:
        return [], [
            f"dataset version {dataset.content_hash[:12]}: not checked, the run scored "
            f"{len(bundle.items)} of its {dataset.item_count} items"
        ]
    rows = sorted(bundle.items, key=lambda row: row.id)
    digest = sha256_hex(b"".join(item_line(_fields(row)) + b"\n" for row in rows))
    if digest != dataset.content_hash:
        return [f"the items give dataset content hash {digest}, not {dataset.content_hash}"], []
    return [], [f"dataset version {dataset.content_hash[:12]}: content hash checked"]


def recompute_scores(bundle: AuditBundle) -> list[ScoreRow]:
    """Every public score of the run, computed again from the bundle's items.

    Raises:
        ValueError: the spec names a metric for another task, or there are no items.
        LookupError: the spec names a metric this Sabha does not know.
    """
    run = bundle.manifest.scoring_run
    spec = run.spec
    rows = bundle.items
    groups = [
        {"language": r.language, "region": r.region, "dialect": r.dialect, **r.attributes}
        for r in rows
    ]
    if spec.task == "generation":  # what ``output_stat`` holds: sacrebleu's statistics
        predictions = ["" if r.error else r.output.strip() for r in rows]
        references = [r.reference or "" for r in rows]
        stats = {m: item_stats_parallel(m, predictions, references) for m in spec.metrics}
        return score_from_item_stats(
            spec.task,
            spec.metrics,
            stats,
            groups,
            breakdowns=spec.breakdowns,
            n_resamples=run.n_resamples,
            seed=run.seed,
            min_items=run.min_items,
        )
    items = [
        ScoredItem(prediction="" if r.error else r.output, label=r.label, groups=g)
        for r, g in zip(rows, groups, strict=True)
    ]
    return score_items(
        spec.task,
        spec.metrics,
        items,
        labels=spec.labels,
        breakdowns=spec.breakdowns,
        n_resamples=run.n_resamples,
        seed=run.seed,
        min_items=run.min_items,
        answer=AnswerSpec.model_validate(spec.answer) if spec.answer else None,
    )


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _agrees(published: PublishedScore, row: ScoreRow) -> bool:
    return (
        _same(published.value, row.value)
        and _same(published.ci_low, row.ci_low)
        and _same(published.ci_high, row.ci_high)
        and published.n == row.n
        and published.too_few == row.too_few
    )


def _number_checks(bundle: AuditBundle, recomputed: list[ScoreRow]) -> list[NumberCheck]:
    held_out = bundle.manifest.held_out
    by_key = {(r.metric, r.breakdown, r.group): r for r in recomputed}
    checks = []
    for score in bundle.manifest.scores:
        key = (score.metric, score.breakdown, score.group)
        if held_out is not None and score.breakdown == held_out.breakdown:
            checks.append(NumberCheck(*key, score, None, PRIVATE))
            continue
        row = by_key.pop(key, None)
        status = MATCH if row is not None and _agrees(score, row) else MISMATCH
        checks.append(NumberCheck(*key, score, row, status))
    checks += [NumberCheck(*key, None, row, MISMATCH) for key, row in by_key.items()]
    return checks


def audit_bundle(bundle: AuditBundle) -> AuditReport:
    """Check every hash and count of ``bundle`` and recompute each public number."""
    run = bundle.manifest.scoring_run
    problems = _file_problems(bundle) + _item_problems(bundle) + _count_problems(bundle)
    dataset_problems, notes = _dataset_check(bundle)
    problems += dataset_problems
    if run.confidence != DEFAULT_CONFIDENCE:
        problems.append(
            f"the run's intervals cover {run.confidence:.0%}; this Sabha computes "
            f"{DEFAULT_CONFIDENCE:.0%} intervals: install the release that made the bundle"
        )
    recomputed: list[ScoreRow] = []
    if bundle.items:
        try:
            recomputed = recompute_scores(bundle)
        except (ValueError, LookupError) as exc:
            problems.append(f"the scores cannot be recomputed: {exc.args[0] if exc.args else exc}")
    checks = _number_checks(bundle, recomputed)
    signatures = {
        (check.metric, check.published.signature, check.recomputed.signature)
        for check in checks
        if check.published and check.recomputed
        if check.published.signature != check.recomputed.signature
    }
    notes += [
        f"{metric}: signature here {here!r}, published {published!r}; install the sacrebleu "
        "version the published signature names to compare like with like"
        for metric, published, here in sorted(signatures, key=str)
    ]
    return AuditReport(checks=checks, problems=problems, notes=notes)
