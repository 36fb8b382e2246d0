"""Read a class label from a model's answer, as the benchmark's ``answer:`` section says.

The rules live in ``AnswerSpec`` (``sabha.platform.benchmarks``), so they are
data: normalise the answer, take a candidate (the first matching pattern's
group, else the first non-empty line), then find the labels and aliases in it
as whole tokens. Token boundaries are Unicode-aware: a label matches only where
no letter, combining mark, digit or ``_`` continues it on either side, so a
Devanagari vowel sign never splits a word and ``असुरक्षित`` does not contain
``सुरक्षित``.

A mention with a negation word of the item's language next to it (the
benchmark's ``answer.negation``) is negated: ``सुरक्षित नहीं है`` is not
``सुरक्षित``; it reads as the opposite label the benchmark declares, or as
``INVALID_LABEL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import regex

from sabha.platform.benchmarks import AnswerSpec, NegationSpec, joined_spellings

from .metrics import INVALID_LABEL

__all__ = ["INVALID_LABEL", "extract_label"]

_WORD = r"[\p{L}\p{M}\p{N}_]"
_EDGES = regex.compile(r"^[\p{P}\p{S}\p{Z}\s]+|[\p{P}\p{S}\p{Z}\s]+$")
# Words for negation: apostrophes join contractions (isn't), hyphens separate
# (गैर-सुरक्षित: a negation word, then the label).
_TOKEN = regex.compile(r"[\p{L}\p{M}\p{N}_]+(?:['’][\p{L}\p{M}\p{N}_]+)*")
# Punctuation ends the clause a negation word can reach across; hyphens and
# apostrophes do not.
_CLAUSE_END = regex.compile(r"(?![-‐‑'’])[\p{P}\p{S}\r\n]")
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


@dataclass(frozen=True)
class _Cues:
    """The negation words that apply to one answer, normalised like the answer."""

    before: frozenset[str]
    after: frozenset[str]
    joined: dict[str, tuple[str, bool]]  # spelling -> (label, negated)
    reach_before: int
    reach_after: int
    opposites: dict[str, str]


_CUES_CACHE: dict[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...], str | None], _Cues] = {}
# A rule's JSON by object: scoring reads every answer of a run with one rule object.
# The object is kept with its key, so its id cannot be reused while cached.
_RULE_KEYS: dict[int, tuple[NegationSpec, str]] = {}


def _rule_key(negation: NegationSpec) -> str:
    known = _RULE_KEYS.get(id(negation))
    if known is None or known[0] is not negation:
        if len(_RULE_KEYS) > 256:
            _RULE_KEYS.clear()
        known = _RULE_KEYS[id(negation)] = (negation, negation.model_dump_json())
    return known[1]


def _cues(
    negation: NegationSpec | None, spec: AnswerSpec, forms: dict[str, str], language: str | None
) -> _Cues | None:
    """The cues for one answer; the same for every answer of a benchmark in one language."""
    if negation is None:
        return None
    key = (_rule_key(negation), tuple(spec.normalize), tuple(forms.items()), language)
    found = _CUES_CACHE.get(key)
    if found is None:
        if len(_CUES_CACHE) > 1024:
            _CUES_CACHE.clear()
        found = _CUES_CACHE[key] = _build_cues(negation, spec, forms, language)
    return found


def _build_cues(
    negation: NegationSpec, spec: AnswerSpec, forms: dict[str, str], language: str | None
) -> _Cues:
    sets = negation.cues_for(language)
    before = {spec.normalize_text(word) for cues in sets for word in cues.before}
    after = {spec.normalize_text(word) for cues in sets for word in cues.after}
    joined: dict[str, tuple[str, bool]] = {}
    for cues in sets:
        for word in cues.joined:
            for form, label in forms.items():
                for spelling in joined_spellings(form, spec.normalize_text(word)):
                    if spelling not in forms:
                        joined.setdefault(spelling, (label, True))
    spellings = set(forms)  # a label or alias is read as itself, never as a negation word
    return _Cues(
        before=frozenset(before - spellings),
        after=frozenset(after - spellings),
        joined=joined,
        reach_before=negation.reach_before,
        reach_after=negation.reach_after,
        opposites=dict(negation.opposites),
    )


def _negation_before(candidate: str, start: int, cues: _Cues) -> int | None:
    """Where a negation word before the mention at ``start`` begins, if one reaches it."""
    clause_start = 0
    for end in _CLAUSE_END.finditer(candidate, 0, start):
        clause_start = end.end()
    words = list(_TOKEN.finditer(candidate, clause_start, start))[-(cues.reach_before + 1) :]
    return next((word.start() for word in words if word.group() in cues.before), None)


def _negation_after(candidate: str, end: int, cues: _Cues) -> int | None:
    """Where a negation word after the mention ending at ``end`` ends, if one reaches it."""
    stop = _CLAUSE_END.search(candidate, end)
    clause_end = stop.start() if stop else len(candidate)
    words = list(_TOKEN.finditer(candidate, end, clause_end))[: cues.reach_after + 1]
    return next((word.end() for word in reversed(words) if word.group() in cues.after), None)


@dataclass(frozen=True)
class _Mention:
    label: str  # what it reads as: the label, its opposite, or INVALID_LABEL
    start: int  # where its phrase begins (a negation word before it, or itself)
    end: int  # where it ends (a negation word after it, or itself)


def _read_mentions(candidate: str, forms: dict[str, str], cues: _Cues | None) -> list[_Mention]:
    spellings = {form: (label, False) for form, label in forms.items()}
    if cues is not None:
        spellings.update(cues.joined)
    mentions = []
    for found in _mentions(tuple(spellings)).finditer(candidate):
        label, negated = spellings[" ".join(found.group().split())]
        start, end = found.start(), found.end()
        if cues is not None:
            before = _negation_before(candidate, start, cues)
            after = _negation_after(candidate, end, cues)
            negated = negated or before is not None or after is not None
            start = start if before is None else before
            end = end if after is None else after
            if negated:
                label = cues.opposites.get(label, INVALID_LABEL)
        mentions.append(_Mention(label, start, end))
    return mentions


def extract_label(
    text: str,
    labels: Sequence[str],
    spec: AnswerSpec | None = None,
    language: str | None = None,
) -> str:
    """The label a model's answer gives, or ``INVALID_LABEL``.

    Args:
        text: The model's answer.
        labels: The benchmark's labels.
        spec: The benchmark's ``answer:`` section; None uses the defaults
            (normalise with NFC, casefold and strip; the first non-empty line;
            ``match: phrase``; no negation words).
        language: The item's language tag, which picks the negation words
            (with those of ``every_item``); None applies every listed language's.

    Returns:
        One of ``labels``, or ``INVALID_LABEL`` when the answer names none,
        names several, names one only inside a phrase (``phrase``), or names
        one negated (``सुरक्षित नहीं``) without an opposite declared for it.
    """
    spec = spec or _DEFAULT_SPEC
    forms = spec.forms(list(labels))
    if not forms:
        return INVALID_LABEL
    candidate = _candidate(spec.normalize_text(text), spec)
    if candidate is None:
        return INVALID_LABEL
    cues = _cues(spec.negation, spec, forms, language)
    if spec.match == "exact":
        stripped = " ".join(_EDGES.sub("", candidate).split())
        if cues is None:
            return forms.get(stripped, INVALID_LABEL)
        whole = [
            m
            for m in _read_mentions(stripped, forms, cues)
            if (m.start, m.end) == (0, len(stripped))
        ]
        return whole[0].label if len(whole) == 1 else INVALID_LABEL
    found = _read_mentions(candidate, forms, cues)
    named = {mention.label for mention in found}
    if len(named) != 1 or INVALID_LABEL in named:
        return INVALID_LABEL
    if spec.match == "phrase" and not all(_begins_phrase(candidate, m.start) for m in found):
        return INVALID_LABEL
    return named.pop()
