"""Agreement between annotators: Krippendorff's alpha for labels and ratings, chrF for text.

Input everywhere is ``{item: {annotator: value}}``. Items with fewer than two
annotations carry no information about agreement and are left out (the
result says how many items counted). Alpha is undefined when every
annotation has the same value; the result then has ``value=None`` and says why.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from sabha.platform.domain import AnnotationTaskType

__all__ = [
    "AGREEMENT_FIELDS",
    "Agreement",
    "agreement_of",
    "krippendorff_alpha",
    "pairwise_chrf",
]

Level = Literal["nominal", "ordinal", "interval"]

# The result fields each task type is checked on, and how.
AGREEMENT_FIELDS: dict[AnnotationTaskType, dict[str, Level | Literal["chrf"]]] = {
    AnnotationTaskType.QA: {"answer": "chrf"},
    AnnotationTaskType.TRANSLATION: {"translation": "chrf"},
    AnnotationTaskType.POST_EDIT: {"translation": "chrf"},
    AnnotationTaskType.LABEL: {"hazard": "nominal", "safety": "nominal"},
    AnnotationTaskType.RATING: {"rating": "ordinal"},
    AnnotationTaskType.PAIRWISE: {"preference": "nominal"},
    AnnotationTaskType.SAFETY: {"behaviour": "nominal", "harm": "nominal"},
}


@dataclass(frozen=True)
class Agreement:
    """One agreement figure.

    Attributes:
        statistic: ``krippendorff_alpha`` or ``chrf`` (mean pairwise chrF, 0-100).
        value: The figure; None when it is undefined (see ``note``).
        items: Items with at least two annotations (the ones that count).
        annotations: Annotations on those items.
        note: Why ``value`` is None, else None.
        unanimous: Every annotation has the same value: alpha is undefined,
            but the annotators never disagreed.
    """

    statistic: str
    value: float | None
    items: int
    annotations: int
    note: str | None = None
    unanimous: bool = False


def _pairable(
    values: Mapping[Hashable, Mapping[Hashable, Any]],
) -> dict[Hashable, dict[Hashable, Any]]:
    return {
        item: {who: v for who, v in by.items() if v is not None}
        for item, by in values.items()
        if sum(v is not None for v in by.values()) >= 2
    }


def krippendorff_alpha(
    values: Mapping[Hashable, Mapping[Hashable, Any]], level: Level = "nominal"
) -> Agreement:
    """Krippendorff's alpha over items rated by two or more annotators.

    Args:
        values: ``{item: {annotator: value}}``; labels for ``nominal``,
            numbers for ``ordinal`` and ``interval``.
        level: The level of measurement.
    """
    import krippendorff

    units = _pairable(values)
    count = sum(len(by) for by in units.values())
    if not units:
        return Agreement("krippendorff_alpha", None, 0, 0, "no item has two annotations yet")
    domain = sorted(
        {v for by in units.values() for v in by.values()}, key=lambda v: (str(type(v)), v)
    )
    if len(domain) < 2:
        return Agreement(
            "krippendorff_alpha",
            None,
            len(units),
            count,
            f"every annotation is {domain[0]!r}: alpha is undefined without variation",
            unanimous=True,
        )
    code = {value: index for index, value in enumerate(domain)}
    annotators = sorted({who for by in units.values() for who in by}, key=str)
    matrix = np.full((len(annotators), len(units)), np.nan)
    for column, by in enumerate(units.values()):
        for who, value in by.items():
            matrix[annotators.index(who), column] = (
                code[value] if level == "nominal" else float(value)
            )
    value = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement=level))
    return Agreement("krippendorff_alpha", value, len(units), count)


def pairwise_chrf(texts: Mapping[Hashable, Mapping[Hashable, str]]) -> Agreement:
    """Mean chrF between every two annotators' texts of the same item (0-100).

    chrF is not symmetric, so each pair is scored both ways and averaged.
    """
    from sacrebleu.metrics import CHRF

    units = _pairable(texts)
    chrf = CHRF()
    scores = [
        (chrf.sentence_score(a, [b]).score + chrf.sentence_score(b, [a]).score) / 2
        for by in units.values()
        for a, b in itertools.combinations([str(t) for t in by.values()], 2)
    ]
    count = sum(len(by) for by in units.values())
    if not scores:
        return Agreement("chrf", None, 0, 0, "no item has two annotations yet")
    return Agreement("chrf", float(np.mean(scores)), len(units), count)


def agreement_of(
    task_type: AnnotationTaskType, values: Mapping[Hashable, Mapping[Hashable, Mapping[str, Any]]]
) -> dict[str, Agreement]:
    """Agreement on every checked field of a task type.

    Args:
        task_type: Which fields and statistics apply (``AGREEMENT_FIELDS``).
        values: ``{item: {annotator: {field: value}}}`` as
            ``configs.result_values`` reads annotations.
    """
    found: dict[str, Agreement] = {}
    for name, how in AGREEMENT_FIELDS[task_type].items():
        per_field = {
            item: {who: fields.get(name) for who, fields in by.items()}
            for item, by in values.items()
        }
        if how == "chrf":
            found[name] = pairwise_chrf(cast(Mapping[Hashable, Mapping[Hashable, str]], per_field))
        else:
            found[name] = krippendorff_alpha(per_field, how)
    return found
