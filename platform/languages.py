"""Language tags and regions, checked against maintained registries.

Sabha's rule: every language tag is BCP-47 with an explicit script
(``hi-Deva``, ``sw-Latn``, ``ta-Taml``), optionally followed by a region and
variants (``bn-Beng-BD``, ``sl-Latn-rozaj``). Every subtag must be registered
in the IANA language subtag registry (through ``langcodes``); names come from
CLDR (``language_data``). Regions are ISO 3166-1 alpha-2 countries (``BD``) or
ISO 3166-2 subdivisions (``IN-UP``), checked with ``pycountry``.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pycountry
from langcodes import Language, LanguageTagError, tag_is_valid

__all__ = [
    "MAX_LANGUAGE_TAG_CHARS",
    "MAX_REGION_CHARS",
    "RTL_SCRIPTS",
    "autonym",
    "check_language_tag",
    "check_region",
    "describe_language",
    "describe_region",
    "is_language_tag",
    "primary_subtag",
    "text_direction",
]

MAX_LANGUAGE_TAG_CHARS = 35  # Item.language
MAX_REGION_CHARS = 10  # Item.region

# ISO 15924 codes of the scripts written right to left (Unicode bidi class R or
# AL). Neither langcodes nor language_data carries a script's direction, so the
# list is kept here; it follows the scripts CLDR and Unicode mark as RTL.
RTL_SCRIPTS = frozenset(
    {
        "Adlm", "Arab", "Aran", "Armi", "Avst", "Chrs", "Cprt", "Elym", "Hatr", "Hebr",
        "Hung", "Khar", "Lydi", "Mand", "Mani", "Mend", "Merc", "Mero", "Narb", "Nbat",
        "Nkoo", "Orkh", "Ougr", "Palm", "Phli", "Phlp", "Phnx", "Prti", "Rohg", "Samr",
        "Sarb", "Sogd", "Sogo", "Syrc", "Syre", "Syrj", "Syrn", "Thaa", "Yezi",
    }
)  # fmt: skip

_EXAMPLES = "e.g. hi-Deva, sw-Latn or ta-Taml"
_REGION_SHAPE = re.compile(r"[A-Za-z]{2}(-[A-Za-z0-9]{1,3})?")


@lru_cache(maxsize=4096)
def check_language_tag(tag: str) -> str:
    """Check a language tag against Sabha's rule and the IANA registry.

    Args:
        tag: A BCP-47 tag such as ``hi-Deva`` or ``bn-Beng-BD``.

    Returns:
        The tag, unchanged.

    Raises:
        ValueError: the tag is malformed, lacks a script, uses an unregistered
            or deprecated subtag, carries extensions, or is not in canonical
            case; the message says which and how to write it instead.
    """
    if not tag or not tag.strip():
        raise ValueError(f"the language tag is empty; write {_EXAMPLES}")
    if len(tag) > MAX_LANGUAGE_TAG_CHARS:
        raise ValueError(
            f"{tag[:40]!r}... has {len(tag)} characters; "
            f"a language tag has at most {MAX_LANGUAGE_TAG_CHARS}"
        )
    try:
        parsed = Language.get(tag, normalize=False)
    except (LanguageTagError, ValueError) as exc:
        raise ValueError(f"{tag!r} is not a BCP-47 tag ({exc}); write {_EXAMPLES}") from exc
    if parsed.extensions or parsed.private:
        raise ValueError(
            f"{tag!r} has extension or private-use subtags; Sabha tags are "
            f"language-Script[-REGION][-variant], {_EXAMPLES}"
        )
    language = parsed.language
    if not language:  # langcodes reads "und" (undetermined) as no language
        raise ValueError(f"{tag!r} names no language ('und' is undetermined); write {_EXAMPLES}")
    if not tag_is_valid(language):
        raise ValueError(
            f"{tag!r}: {language!r} is not a registered language; "
            "use an ISO 639 code from the IANA registry, " + _EXAMPLES
        )
    if parsed.script is None:
        likely = Language.get(language).maximize().script or "Latn"
        raise ValueError(f"{tag!r} has no script subtag; write e.g. {language}-{likely}")
    if not tag_is_valid(f"{language}-{parsed.script}"):
        raise ValueError(
            f"{tag!r}: {parsed.script!r} is not a registered ISO 15924 script; "
            f"write e.g. {language}-Latn or {language}-Deva"
        )
    if parsed.territory and not tag_is_valid(f"{language}-{parsed.territory}"):
        raise ValueError(
            f"{tag!r}: {parsed.territory!r} is not a registered region; "
            "use an ISO 3166-1 alpha-2 code such as IN or KE"
        )
    if not tag_is_valid(tag):
        raise ValueError(
            f"{tag!r} has an unregistered or misplaced variant {parsed.variants}; "
            "remove it or use a variant from the IANA registry"
        )
    canonical = _recased(tag)
    if canonical != tag:
        raise ValueError(
            f"{tag!r} is not in canonical case; write {canonical!r} "
            "(language lower case, Script title case, REGION upper case)"
        )
    preferred = Language.get(tag)  # replaces deprecated subtags (iw -> he)
    if (preferred.language, preferred.script, preferred.territory) != (
        parsed.language,
        parsed.script,
        parsed.territory,
    ):
        raise ValueError(f"{tag!r} uses a deprecated subtag; write {preferred.to_tag()!r}")
    return tag


def _recased(tag: str) -> str:
    """The tag in BCP-47 case, subtags in their order (variants keep theirs)."""
    language, *rest = tag.split("-")
    parts = [language.lower()]
    for part in rest:
        if len(part) == 4 and part.isalpha():
            parts.append(part.title())
        elif len(part) == 2 or (len(part) == 3 and part.isdigit()):
            parts.append(part.upper())
        else:
            parts.append(part.lower())
    return "-".join(parts)


def is_language_tag(tag: str) -> bool:
    """True for a registered BCP-47 tag with an explicit script, such as ``hi-Deva``."""
    try:
        check_language_tag(tag)
    except ValueError:
        return False
    return True


def primary_subtag(tag: str) -> str:
    """The language part of a tag: ``hi`` for ``hi-Latn``."""
    return tag.split("-")[0]


def describe_language(tag: str, locale: str = "en") -> str:
    """A name from CLDR: ``Hindi (Latin script)`` for ``hi-Latn``; in another interface
    language ``locale``, CLDR's names in it: ``हिन्दी (लैटिन)`` in Hindi.

    The script is always named, since Sabha compares scripts of one language;
    a region follows it: ``Bangla (Bangla script, Bangladesh)``.
    """
    parsed = Language.get(tag, normalize=False)
    name = parsed.language_name(locale)
    details = []
    if parsed.script:
        script = parsed.script_name(locale)
        details.append(f"{script} script" if locale == "en" else script)
    if parsed.territory:
        details.append(parsed.territory_name(locale))
    return f"{name} ({', '.join(details)})" if details else name


def autonym(tag: str) -> str:
    """The language's name for itself: ``हिन्दी`` for ``hi-Deva``, ``Kiswahili`` for ``sw-Latn``.

    This is the autonym of the language alone (``hi-Latn`` also gives
    ``हिन्दी``); where CLDR has none, the English name.
    """
    language = Language.get(primary_subtag(tag), normalize=False)
    return str(language.autonym())


def text_direction(tag: str) -> str:
    """``rtl`` where the tag's script is written right to left (``RTL_SCRIPTS``), else ``ltr``."""
    try:
        script = Language.get(tag, normalize=False).script
    except (LanguageTagError, ValueError):
        return "ltr"
    return "rtl" if script in RTL_SCRIPTS else "ltr"


def _country_name(alpha_2: str) -> str | None:
    country = pycountry.countries.get(alpha_2=alpha_2)
    if country is None:
        return None
    return str(getattr(country, "common_name", None) or country.name)


def check_region(code: str) -> str:
    """Check a region: an ISO 3166-2 subdivision (``IN-UP``) or ISO 3166-1 country (``BD``).

    Returns:
        The code, unchanged.

    Raises:
        ValueError: the code is not a current ISO 3166 country or subdivision;
            the message says how to write one.
    """
    if not _REGION_SHAPE.fullmatch(code):
        raise ValueError(
            f"{code[:20]!r} is not a region; write an ISO 3166-2 subdivision such as IN-UP "
            "or an ISO 3166-1 country such as BD"
        )
    country, _, subdivision = code.partition("-")
    if code != code.upper():
        raise ValueError(f"{code!r} must be upper case; write {code.upper()!r}")
    if _country_name(country) is None:
        raise ValueError(
            f"{code!r}: {country!r} is not an ISO 3166-1 alpha-2 country code; "
            "write e.g. IN, KE or BD"
        )
    if subdivision and pycountry.subdivisions.get(code=code) is None:
        raise ValueError(
            f"{code!r} is not an ISO 3166-2 subdivision of {_country_name(country)}; "
            f"write e.g. {_example_subdivision(country)}, or the country code {country} alone"
        )
    return code


def _example_subdivision(country: str) -> str:
    found = pycountry.subdivisions.get(country_code=country) or []
    codes = sorted(s.code for s in found)
    return codes[0] if codes else f"{country}-XX"


def describe_region(code: str) -> str:
    """A readable name: ``Uttar Pradesh, India`` for ``IN-UP``, ``Bangladesh`` for ``BD``."""
    country, _, subdivision = code.partition("-")
    country_name = _country_name(country) or country
    if not subdivision:
        return country_name
    found = pycountry.subdivisions.get(code=code)
    return f"{found.name}, {country_name}" if found else f"{code}, {country_name}"
