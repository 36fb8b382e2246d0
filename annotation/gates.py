"""Release gates: what a dataset's annotations must reach before a version is released.

Each gate is checked per language; a failed gate says which gate, where, the
value found, the value required and by how much it falls short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .agreement import Agreement

__all__ = ["GateResult", "ReleaseGates", "check_gates", "failed_gates_message"]


@dataclass(frozen=True)
class ReleaseGates:
    """The thresholds; ``None`` turns a gate off.

    Attributes:
        min_annotations_per_item: Every item needs this many annotations
            (from different annotators).
        min_alpha: Krippendorff's alpha of every label or rating field, per language.
        min_chrf: Mean pairwise chrF of free-text fields, per language.
        min_acceptance: Share of reviewed annotations reviewers accepted, per language.
    """

    min_annotations_per_item: int | None = 2
    min_alpha: float | None = 0.667
    min_chrf: float | None = None
    min_acceptance: float | None = 0.8


@dataclass(frozen=True)
class GateResult:
    """One gate in one language: passed or not, with the numbers."""

    gate: str
    language: str
    required: float
    actual: float | None
    passed: bool
    note: str | None = None

    def describe(self) -> str:
        """One line a maintainer can act on."""
        if self.note:
            return f"{self.gate} in {self.language}: {self.note}"
        if self.actual is None:
            return (
                f"{self.gate} in {self.language}: cannot be computed yet (needs {self.required:g})"
            )
        verdict = "passes" if self.passed else f"falls short by {self.required - self.actual:.3g}"
        return (
            f"{self.gate} in {self.language} is {self.actual:.3g}, required {self.required:g}: "
            f"{verdict}"
        )


def _result(gate: str, language: str, required: float, actual: float | None) -> GateResult:
    return GateResult(gate, language, required, actual, actual is not None and actual >= required)


def check_gates(
    gates: ReleaseGates,
    *,
    fewest_annotations: Mapping[str, int],
    agreement: Mapping[str, Mapping[str, Agreement]],
    acceptance: Mapping[str, tuple[int, int]],
) -> list[GateResult]:
    """Check every gate in every language.

    Args:
        gates: The thresholds.
        fewest_annotations: Per language, the fewest annotations any item has.
        agreement: Per language, agreement by field (``dataset_agreement``).
        acceptance: Per language, (accepted, reviewed) annotation counts.
    """
    results: list[GateResult] = []
    for language in sorted(fewest_annotations):
        if gates.min_annotations_per_item is not None:
            results.append(
                _result(
                    "annotations per item",
                    language,
                    gates.min_annotations_per_item,
                    fewest_annotations[language],
                )
            )
        for name, figure in sorted(agreement.get(language, {}).items()):
            required = (
                gates.min_alpha if figure.statistic == "krippendorff_alpha" else gates.min_chrf
            )
            if required is None:
                continue
            label = "alpha" if figure.statistic == "krippendorff_alpha" else "chrF"
            if figure.unanimous:  # no disagreement at all: nothing to hold the release for
                results.append(
                    GateResult(f"{label} of {name}", language, required, None, True, figure.note)
                )
                continue
            results.append(_result(f"{label} of {name}", language, required, figure.value))
        if gates.min_acceptance is not None:
            accepted, reviewed = acceptance.get(language, (0, 0))
            results.append(
                _result(
                    "reviewer acceptance",
                    language,
                    gates.min_acceptance,
                    accepted / reviewed if reviewed else None,
                )
            )
    return results


def failed_gates_message(results: list[GateResult]) -> list[str]:
    """The lines describing every failed gate (empty when all pass)."""
    return [r.describe() for r in results if not r.passed]
