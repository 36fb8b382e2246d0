"""Read a class label from a model's answer, as the benchmark's ``answer:`` section says.

The rules live in ``AnswerSpec`` (``sabha.platform.benchmarks``), so they are
data: normalise the answer, take a candidate (the first matching pattern's
group, else the first non-empty line), then find the labels and aliases in it
as whole tokens. Token boundaries are Unicode-aware: a label matches only where
no letter, combining mark, digit or ``_`` continues it on either side, so a
Devanagari vowel sign never splits a word and ``असुरक्षित`` does not contain
``सुरक्षित``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import regex

from sabha.platform.benchmarks import AnswerSpec

from .metrics import INVALID_LABEL

__all__ = ["INVALID_LABEL", "extract_label"]

_WORD = r"[\p{L}\p{M}\p{N}_]"
_EDGES = regex.compile(r"^[\p{P}\p{S}\p{Z}\s]+|[\p{P}\p{S}\p{Z}\s]+$")
# A user's pattern gets this long on one answer; a pathological one reads as invalid.
_PATTERN_TIMEOUT_S = 1.0
_DEFAULT_SPEC = AnswerSpec()


@lru_cache(maxsize=256)
def _compile(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


@lru_cache(maxsize=256)
def _mentions(forms: tuple[str, ...]) -> regex.Pattern[str]:
    """One pattern for every spelling, longest first, each a whole token."""
    ordered = sorted(forms, key=lambda form: (-len(form), form))
    alternatives = "|".join(r"\s+".join(map(regex.escape, form.split())) for form in ordered)
    return regex.compile(rf"(?<!{_WORD})(?:{alternatives})(?!{_WORD})")


def _candidate(text: str, spec: AnswerSpec) -> str | None:
    if not spec.patterns:
        return next((line for line in text.splitlines() if line.strip()), "")
    for pattern in spec.patterns:
        try:
            found = _compile(pattern).search(text, timeout=_PATTERN_TIMEOUT_S)
        except TimeoutError:
            return None
        if found is not None:
            return found.group(1) or ""
    return None


def _begins_phrase(candidate: str, start: int) -> bool:
    before = candidate[:start].rstrip()
    return not before or not regex.match(_WORD, before[-1])


def extract_label(text: str, labels: Sequence[str], spec: AnswerSpec | None = None) -> str:
    """The label a model's answer gives, or ``INVALID_LABEL``.

    Args:
        text: The model's answer.
        labels: The benchmark's labels.
        spec: The benchmark's ``answer:`` section; None uses the defaults
            (normalise with NFC, casefold and strip; the first non-empty line;
            ``match: phrase``).

    Returns:
        One of ``labels``, or ``INVALID_LABEL`` when the answer names none,
        names several, or (``phrase``) names one only inside a phrase, as in
        ``not safe``.
    """
    spec = spec or _DEFAULT_SPEC
    forms = spec.forms(list(labels))
    if not forms:
        return INVALID_LABEL
    candidate = _candidate(spec.normalize_text(text), spec)
    if candidate is None:
        return INVALID_LABEL
    if spec.match == "exact":
        stripped = " ".join(_EDGES.sub("", candidate).split())
        return forms.get(stripped, INVALID_LABEL)
    found = list(_mentions(tuple(forms)).finditer(candidate))
    named = {forms[" ".join(mention.group().split())] for mention in found}
    if len(named) != 1:
        return INVALID_LABEL
    if spec.match == "phrase" and not all(_begins_phrase(candidate, m.start()) for m in found):
        return INVALID_LABEL
    return named.pop()
