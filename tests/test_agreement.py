"""Agreement statistics: Krippendorff's alpha on labels and ratings, pairwise chrF on text."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from sabha.annotation.agreement import agreement_of, krippendorff_alpha, pairwise_chrf
from sabha.platform.domain import AnnotationTaskType


def test_alpha_matches_the_krippendorff_package_and_skips_single_annotations() -> None:
    values = {
        "i1": {"a": "safe", "b": "safe"},
        "i2": {"a": "unsafe", "b": "safe"},
        "i3": {"a": "unsafe", "b": "unsafe", "c": "unsafe"},
        "i4": {"a": "safe"},  # one annotation: carries no agreement
    }
    found = krippendorff_alpha(values, "nominal")
    # rows: annotators a, b, c; columns: i1..i3; safe=0, unsafe=1
    nan = np.nan
    expected = krippendorff.alpha(
        reliability_data=[[0, 1, 1], [0, 0, 1], [nan, nan, 1]], level_of_measurement="nominal"
    )
    assert found.value == pytest.approx(expected)
    assert (found.items, found.annotations) == (3, 7)


def test_perfect_ordinal_agreement_is_one_and_no_variation_is_undefined() -> None:
    assert krippendorff_alpha({"x": {"a": 1, "b": 1}, "y": {"a": 5, "b": 5}}, "ordinal").value == 1
    same = krippendorff_alpha({"x": {"a": 3, "b": 3}, "y": {"a": 3, "b": 3}}, "ordinal")
    assert same.value is None and same.unanimous and "undefined" in (same.note or "")
    assert krippendorff_alpha({"x": {"a": 3}}).note == "no item has two annotations yet"


def test_pairwise_chrf_is_100_for_identical_text_and_lower_otherwise() -> None:
    same = pairwise_chrf({"q": {"a": "पहली सिंचाई", "b": "पहली सिंचाई"}})
    assert same.value == pytest.approx(100.0)
    different = pairwise_chrf({"q": {"a": "पहली सिंचाई", "b": "दूसरी बार पानी"}})
    assert different.value is not None and different.value < 50


def test_agreement_of_checks_each_field_of_a_task_type() -> None:
    values = {
        "i1": {
            "a": {"behaviour": "refused", "harm": "not-harmful"},
            "b": {"behaviour": "refused", "harm": "harmful"},
        },
        "i2": {
            "a": {"behaviour": "complied", "harm": "harmful"},
            "b": {"behaviour": "complied", "harm": "not-harmful"},
        },
    }
    found = agreement_of(AnnotationTaskType.SAFETY, values)
    assert found["behaviour"].value == pytest.approx(1.0)
    assert found["harm"].value is not None and found["harm"].value < 0
