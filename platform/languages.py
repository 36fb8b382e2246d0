"""BCP-47 language tags with script, and readable names for them."""

from __future__ import annotations

import re

__all__ = ["LANGUAGE_TAG_PATTERN", "describe_language", "is_language_tag", "primary_subtag"]

# language (2-3 letters) - script (4 letters) [- region (2 letters or 3 digits)]
LANGUAGE_TAG_PATTERN = re.compile(r"^[a-z]{2,3}-[A-Z][a-z]{3}(-([A-Z]{2}|[0-9]{3}))?$")

_LANGUAGES = {
    "as": "Assamese",
    "bn": "Bengali",
    "en": "English",
    "gu": "Gujarati",
    "ha": "Hausa",
    "hi": "Hindi",
    "kn": "Kannada",
    "ml": "Malayalam",
    "mr": "Marathi",
    "ne": "Nepali",
    "or": "Odia",
    "pa": "Punjabi",
    "sw": "Swahili",
    "ta": "Tamil",
    "te": "Telugu",
    "ur": "Urdu",
    "yo": "Yoruba",
}
_SCRIPTS = {
    "Arab": "Arabic script",
    "Beng": "Bengali script",
    "Deva": "Devanagari",
    "Gujr": "Gujarati script",
    "Guru": "Gurmukhi",
    "Knda": "Kannada script",
    "Latn": "Latin script",
    "Mlym": "Malayalam script",
    "Orya": "Odia script",
    "Taml": "Tamil script",
    "Telu": "Telugu script",
}
_RTL_SCRIPTS = {"Arab", "Hebr", "Thaa", "Syrc", "Nkoo", "Adlm"}


def is_language_tag(tag: str) -> bool:
    """True for a BCP-47 tag with an explicit script, such as ``hi-Deva``."""
    return bool(LANGUAGE_TAG_PATTERN.match(tag))


def primary_subtag(tag: str) -> str:
    """The language part of a tag: ``hi`` for ``hi-Latn``."""
    return tag.split("-")[0]


def describe_language(tag: str) -> str:
    """A readable name: ``Hindi (Latin script)`` for ``hi-Latn``."""
    parts = tag.split("-")
    language = _LANGUAGES.get(parts[0], parts[0])
    script = _SCRIPTS.get(parts[1], parts[1]) if len(parts) > 1 else None
    return f"{language} ({script})" if script else language


def text_direction(tag: str) -> str:
    """``rtl`` for right-to-left scripts, else ``ltr``."""
    parts = tag.split("-")
    return "rtl" if len(parts) > 1 and parts[1] in _RTL_SCRIPTS else "ltr"
