"""How a classification answer is read: the ``answer:`` section of a benchmark file."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

import regex
from pydantic import AfterValidator, Field, SerializerFunctionWrapHandler, model_serializer

from ._fields import Strict, Stripped, text
from ._negation import NegationSpec

__all__ = ["AnswerSpec"]


def _check_pattern(pattern: str) -> str:
    try:
        compiled = regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(
            f"{pattern!r} is not a valid regular expression ({exc}); fix it, e.g. "
            r"'label:\s*(.+)'"
        ) from exc
    if compiled.groups != 1:
        raise ValueError(
            f"{pattern!r} has {compiled.groups} capture groups; it needs exactly one, around "
            r"the answer, e.g. 'label:\s*(\w+)' (write other groups as (?:...))"
        )
    return pattern


AnswerPattern = Annotated[str, Field(min_length=1), text(), AfterValidator(_check_pattern)]
Alias = Annotated[str, Stripped, text("label")]
Normalization = Literal["nfc", "nfkc", "casefold", "strip"]


def _default_normalization() -> list[Normalization]:
    return ["nfc", "casefold", "strip"]


class AnswerSpec(Strict):
    """How a classification answer is read (``leaderboards.extraction.extract_label``).

    The answer is normalised (``normalize``, in order); the first of ``patterns``
    that matches gives the candidate (its one group), else the candidate is the
    answer's first non-empty line. Labels and ``aliases`` are normalised the
    same way and matched as whole tokens (no letter, mark, digit or ``_`` on
    either side), longest first, each match consuming its span, so an alias
    ``not safe`` of ``unsafe`` wins over the label ``safe``. ``match`` decides
    what counts:

    - ``phrase`` (default): exactly one label is mentioned, and every mention
      begins a phrase (the candidate's start, or right after punctuation), so
      ``not safe`` is never read as ``safe``.
    - ``contains``: exactly one label is mentioned, anywhere.
    - ``exact``: the candidate, stripped of surrounding punctuation and
      whitespace, is a label or alias.

    ``negation`` (``_negation.NegationSpec``) says which words negate a label
    in each language: a negated mention reads as its opposite label, or makes
    the answer unparseable, and a negation word before a label starts its
    phrase (``not safe`` begins a phrase; ``it is not safe`` does not).
    Benchmarks loaded from a file always have it (the loader fills in the
    words of their languages); a definition stored without it (loaded before
    negation was read) keeps the rule it was scored with.

    Anything else reads as ``INVALID_LABEL``.
    """

    normalize: list[Normalization] = Field(
        default_factory=_default_normalization,
        description="Steps applied in order to the answer, labels and aliases",
    )
    patterns: list[AnswerPattern] = Field(
        default_factory=list,
        max_length=20,
        description="Regexes with one group, tried in order; the first match gives the "
        "candidate (default: the answer's first non-empty line)",
    )
    aliases: dict[str, list[Alias]] = Field(
        default_factory=dict, description="label -> other spellings that mean it"
    )
    match: Literal["phrase", "contains", "exact"] = Field(
        default="phrase",
        description="phrase: exactly one label is mentioned and every mention begins a "
        "phrase (start, or after punctuation), so 'not safe' is never read as 'safe'; "
        "contains: exactly one label is mentioned anywhere; exact: the candidate, stripped "
        "of surrounding punctuation, is a label or alias",
    )
    negation: NegationSpec | None = Field(
        default=None,
        description="Negation words per language and what a negated label means; filled "
        "in from Sabha's words for the benchmark's languages when left out",
    )

    @model_serializer(mode="wrap")
    def _leave_out_no_negation(self, handler: SerializerFunctionWrapHandler) -> Any:
        # A definition stored before negation existed dumps as it always did,
        # so its scoring identity is unchanged.
        data = handler(self)
        if isinstance(data, dict) and self.negation is None:
            data.pop("negation", None)
        return data

    def normalize_text(self, text: str) -> str:
        """Apply the ``normalize`` steps, in order, to an answer, label or alias."""
        for step in self.normalize:
            if step == "nfc":
                text = unicodedata.normalize("NFC", text)
            elif step == "nfkc":
                text = unicodedata.normalize("NFKC", text)
            elif step == "casefold":
                text = text.casefold()
            else:
                text = text.strip()
        return text

    def forms(self, labels: list[str]) -> dict[str, str]:
        """Every normalised spelling (labels and aliases, whitespace collapsed) -> its label."""
        forms: dict[str, str] = {}
        for label in labels:
            for spelling in [label, *self.aliases.get(label, [])]:
                forms.setdefault(" ".join(self.normalize_text(spelling).split()), label)
        return forms

    def problems_with_labels(self, labels: list[str]) -> list[tuple[str, str]]:
        """Aliases of undeclared labels, and spellings that mean two labels, as (field, message)."""
        problems = [
            (f"aliases.{name}", f"{name!r} is not a declared label; declared: {labels}")
            for name in self.aliases
            if name not in labels
        ]
        owner: dict[str, str] = {}
        for label in labels:
            for index, spelling in enumerate([label, *self.aliases.get(label, [])]):
                form = " ".join(self.normalize_text(spelling).split())
                where = f"aliases.{label}.{index - 1}" if index else "labels"
                if not form:
                    problems.append((where, f"{spelling!r} is empty once normalised"))
                elif owner.setdefault(form, label) != label:
                    problems.append(
                        (
                            where,
                            f"{spelling!r} already means {owner[form]!r}; an alias may "
                            "name one label only: remove it from one of them",
                        )
                    )
        if self.negation is not None:
            problems += [
                (f"negation.{field}", message)
                for field, message in self.negation.problems_with_labels(labels)
            ]
        return problems
