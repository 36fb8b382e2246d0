"""Negation in answers, per language: the words that turn "safe" into "not safe".

A benchmark's ``answer.negation`` section (``NegationSpec``) says which words
negate a label in each language and what a negated label means. Sabha ships
the words of the languages below (``BUILTIN_NEGATION``); a classification
benchmark that declares none gets those of its languages, resolved into the
stored definition, so its scoring identity names the exact words it was
scored with and a later change of this table changes no stored number.

Word order differs by language, so each language says where its words stand:

- ``before``: the negation precedes the label (English "not safe", "isn't
  safe"; Swahili "si salama", "haiko salama"; Hindi "न सुरक्षित", "गैर-सुरक्षित").
- ``after``: it follows (Hindi "सुरक्षित नहीं है"; Tamil "பாதுகாப்பானது அல்ல";
  Bengali "নিরাপদ নয়").
- ``joined``: it is written onto the label's last word (Tamil
  "பாதுகாப்பானதல்ல", "பாதுகாப்பில்லை"; see ``joined_spellings``).

Choices worth knowing (each is tested):

- Hindi ``न`` counts only before the label: after it, "सुरक्षित है न?" is the
  tag question "it is safe, isn't it?", which affirms. ``नहीं`` and ``मत``
  count on both sides.
- Tamil ``அல்லது`` is "or", not a negation; only ``அல்ல`` (and its forms)
  is. Tamil and Bengali negate after the predicate, so they have no
  ``before`` words.
- Swahili negates with the copula ``si``/``sio``/``siyo`` or a negative
  verb form (``haiko``, ``hayuko``, ``hakuna``, ``haina``...) before the
  adjective; ``na`` ("and", "with") is not a negation in Swahili, so
  romanised Hindi's ``na`` is only in the ``hi-Latn`` list.
- English words apply to every item (``every_item``): models often answer
  in English whatever they were asked in.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..languages import check_language_tag

__all__ = [
    "BUILTIN_NEGATION",
    "NegationCues",
    "NegationSpec",
    "joined_spellings",
    "resolve_negation",
]

_MAX_CUE_CHARS = 40


def _check_cue(word: str) -> str:
    if not word or len(word) > _MAX_CUE_CHARS:
        raise ValueError(f"a negation word has 1 to {_MAX_CUE_CHARS} characters")
    if re.search(r"[\s\x00-\x1f\ud800-\udfff]", word):
        raise ValueError(
            f"{word[:40]!r} is not one word; a negation word has no spaces or control "
            "characters (list each word of a phrase on its own)"
        )
    return word


def _check_tag(tag: str) -> str:
    return check_language_tag(tag)


Cue = Annotated[str, AfterValidator(_check_cue)]
CueLanguage = Annotated[str, AfterValidator(_check_tag)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NegationCues(_Strict):
    """The negation words of one language, by where they stand relative to the label."""

    before: list[Cue] = Field(
        default_factory=list, max_length=100, description="Words that negate a label they precede"
    )
    after: list[Cue] = Field(
        default_factory=list, max_length=100, description="Words that negate a label they follow"
    )
    joined: list[Cue] = Field(
        default_factory=list,
        max_length=20,
        description="Words written onto the label's last word (Tamil: பாதுகாப்பானதல்ல)",
    )


class NegationSpec(_Strict):
    """How negation is read: a negated label never counts as that label.

    A label (or alias) with a negation word of the item's language (or of an
    ``every_item`` language) next to it, in the same clause (no punctuation
    between) and at most ``reach_before`` / ``reach_after`` words away, is
    negated: it reads as its entry in ``opposites`` (``not safe`` as
    ``unsafe``), or, without one, makes the answer unparseable.
    """

    cues: dict[CueLanguage, NegationCues] = Field(
        default_factory=dict,
        description="Negation words per language tag; languages not listed get Sabha's "
        "built-in words when builtin is true",
    )
    builtin: bool = Field(
        default=True,
        description="Fill the benchmark's languages (and every_item's) from Sabha's built-in "
        "words where cues does not list them",
    )
    every_item: list[CueLanguage] = Field(
        default_factory=lambda: ["en-Latn"],
        description="Languages whose words apply to every item, whatever its language",
    )
    opposites: dict[str, str] = Field(
        default_factory=dict,
        description="label -> the label its negation means (e.g. safe: unsafe); a negated "
        "label without one makes the answer unparseable",
    )
    reach_before: int = Field(
        default=2, ge=0, le=5, description="Most words between a 'before' word and the label"
    )
    reach_after: int = Field(
        default=1, ge=0, le=5, description="Most words between the label and an 'after' word"
    )

    def cues_for(self, language: str | None) -> list[NegationCues]:
        """The cue sets that apply to an item in ``language`` (None: every listed language)."""
        if language is None:
            return list(self.cues.values())
        own = self.cues.get(language) or self.cues.get("-".join(language.split("-")[:2]))
        shared = [self.cues[tag] for tag in self.every_item if tag in self.cues]
        return [own, *shared] if own is not None else shared

    def problems_with_labels(self, labels: list[str]) -> list[tuple[str, str]]:
        """Opposites that name undeclared labels, as ``(field, message)``."""
        problems = []
        for label, opposite in self.opposites.items():
            if label not in labels:
                problems.append(
                    (f"opposites.{label}", f"{label!r} is not a declared label; declared: {labels}")
                )
            elif opposite not in labels:
                problems.append(
                    (
                        f"opposites.{label}",
                        f"{opposite!r} is not a declared label; declared: {labels}",
                    )
                )
        return problems


# Sabha's negation words. Changing them changes no stored benchmark (each
# stores its resolved words); a benchmark loaded after the change gets the new
# words, and with them a new scoring identity.
BUILTIN_NEGATION: dict[str, NegationCues] = {
    "en-Latn": NegationCues(
        before=[
            "not", "no", "never", "non", "neither", "nor", "hardly", "cannot",
            "isn't", "aren't", "wasn't", "weren't", "ain't", "doesn't", "don't", "didn't",
            "won't", "wouldn't", "shouldn't", "can't", "couldn't",
            "isn’t", "aren’t", "wasn’t", "weren’t", "ain’t", "doesn’t", "don’t", "didn’t",
            "won’t", "wouldn’t", "shouldn’t", "can’t", "couldn’t",
        ],
    ),
    "hi-Deva": NegationCues(
        before=["नहीं", "नही", "न", "मत", "गैर"],
        after=["नहीं", "नही", "मत"],
    ),
    "hi-Latn": NegationCues(
        before=["nahi", "nahin", "nahee", "nhi", "na", "mat", "gair", "ghair"],
        after=["nahi", "nahin", "nahee", "nhi", "nai", "mat"],
    ),
    "ta-Taml": NegationCues(
        after=["இல்லை", "அல்ல", "கிடையாது", "அல்லாத", "அல்லாதது", "இல்லாத"],
        joined=["அல்ல", "இல்லை"],
    ),
    "bn-Beng": NegationCues(
        after=["নয়", "না", "নেই", "নই", "নন", "নও", "নহে"],
    ),
    "sw-Latn": NegationCues(
        before=[
            "si", "sio", "siyo", "hakuna", "haina", "hana", "bila",
            "haiko", "hayuko", "hauko", "hakiko", "haliko", "hayako", "hawako",
            "haviko", "haziko", "hapako", "hakuko", "hamuko",
        ],
    ),
}  # fmt: skip


def resolve_negation(spec: NegationSpec | None, languages: list[str]) -> NegationSpec:
    """``spec`` (default: an empty one) with the built-in words filled in where it asks.

    Languages listed in ``cues`` keep the benchmark's own words; with
    ``builtin``, each of ``languages`` and ``every_item`` not listed gets
    Sabha's words when Sabha has them.
    """
    spec = spec or NegationSpec()
    if not spec.builtin:
        return spec
    cues = dict(spec.cues)
    for tag in [*languages, *spec.every_item]:
        builtin = BUILTIN_NEGATION.get(tag) or BUILTIN_NEGATION.get("-".join(tag.split("-")[:2]))
        if tag not in cues and builtin is not None:
            cues[tag] = builtin
    return spec.model_copy(update={"cues": cues})


# Tamil independent vowels and the vowel signs they become after a consonant.
_TAMIL_VOWEL_SIGNS = {
    "அ": "", "ஆ": "ா", "இ": "ி", "ஈ": "ீ", "உ": "ு", "ஊ": "ூ",
    "எ": "ெ", "ஏ": "ே", "ஐ": "ை", "ஒ": "ொ", "ஓ": "ோ", "ஔ": "ௌ",
}  # fmt: skip
_TAMIL_CONSONANT = re.compile("[\u0b95-\u0bb9]")
_TAMIL_FRONT_SIGNS = {"ி", "ீ", "ெ", "ே", "ை"}  # take the glide ய; the others take வ


def joined_spellings(word: str, negation: str) -> list[str]:
    """How ``negation`` is written onto ``word``: as is, and by Tamil sandhi.

    Tamil joins a word and a following vowel-initial word: a final short
    ``u`` (``ு`` after a consonant) drops and the consonant takes the next
    vowel (பாதுகாப்பானது + அல்ல → பாதுகாப்பானதல்ல; பாதுகாப்பு + இல்லை →
    பாதுகாப்பில்லை); after another vowel a glide comes between (ய after
    i, e, ai; வ otherwise: நல்லவை + அல்ல → நல்லவையல்ல); a final consonant
    (with ``்``) takes the vowel (நலம் + இல்லை → நலமில்லை).
    """
    spellings = [word + negation]
    sign = _TAMIL_VOWEL_SIGNS.get(negation[:1])
    if sign is None or len(word) < 2:
        return spellings
    rest = negation[1:]
    last, before_last = word[-1], word[-2]
    if last in ("ு", "்") and _TAMIL_CONSONANT.match(before_last):
        spellings.append(word[:-1] + sign + rest)  # the consonant takes the vowel
    elif last in _TAMIL_VOWEL_SIGNS.values():
        glide = "ய" if last in _TAMIL_FRONT_SIGNS else "வ"
        spellings.append(word + glide + sign + rest)
    elif _TAMIL_CONSONANT.match(last):  # the inherent vowel a
        spellings.append(word + "வ" + sign + rest)
    return spellings
