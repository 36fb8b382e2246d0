"""The interface's message catalogs: what the templates and the web code ask to translate.

``python -m sabha.platform.web.catalogs`` (``make translations``) writes
``translations/messages.pot`` from the source and merges it into each
language's ``<code>.po``: new strings arrive empty, strings no longer used
are dropped, translations of the rest are kept. The output is stable (no
dates, no line numbers), so a refresh that finds nothing new changes nothing.
``tests/test_translations.py`` uses :func:`extract_messages` to fail on a
string that a catalog lacks.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from .i18n import TRANSLATIONS, UI_LANGUAGES

__all__ = [
    "SOURCE_FOLDERS",
    "ReviewedCatalog",
    "catalog_problems",
    "extract_messages",
    "import_reviewed",
    "read_catalog",
    "refresh",
    "review_rows",
    "translation_problems",
]

SOURCE_FOLDERS = ("platform/web", "leaderboards")
"""Folders (from the repository root) whose templates and code hold interface strings."""
_METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
_OPTIONS = {"**/templates/**.html": {"trimmed": "true"}}
_KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
_COMMENT_TAGS = ("Translators:",)


def _repo() -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists() or not (root / "platform" / "web").is_dir():
        raise SystemExit(
            f"{root} is not a Sabha checkout: run this from a clone (make translations)."
        )
    return root


def extract_messages(root: Path | None = None) -> Catalog:
    """Every marked string of the templates and web code, as a catalog template."""
    root = root or _repo()
    catalog = Catalog(project="Sabha", fuzzy=False)
    for folder in SOURCE_FOLDERS:
        for filename, lineno, message, comments, context in extract_from_dir(
            root / folder,
            method_map=_METHODS,
            options_map=_OPTIONS,
            keywords=_KEYWORDS,
            comment_tags=_COMMENT_TAGS,
            strip_comment_tags=True,
        ):
            catalog.add(
                message,
                None,
                [(f"{folder}/{filename}", lineno)],
                auto_comments=comments,
                context=context,
            )
    return catalog


def read_catalog(code: str, folder: Path | None = None) -> Catalog:
    """The catalog of interface language ``code`` (empty if it has none yet)."""
    path = (folder or TRANSLATIONS) / f"{code}.po"
    if not path.exists():
        return Catalog(locale=code, project="Sabha", fuzzy=False)
    with path.open("rb") as po:
        return read_po(po, locale=code)


def _write(catalog: Catalog, path: Path, *, omit_header: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as out:
        write_po(
            out,
            catalog,
            no_location=True,
            sort_output=True,
            omit_header=omit_header,
            ignore_obsolete=True,
            width=100,
        )
    tmp.replace(path)  # atomic: a failed refresh leaves the old catalog


def refresh(root: Path | None = None) -> dict[str, int]:
    """Rewrite ``messages.pot`` and merge it into each catalog; untranslated strings by code."""
    template = extract_messages(root)
    folder = (root / "platform/web/translations") if root else TRANSLATIONS
    folder.mkdir(exist_ok=True)
    _write(template, folder / "messages.pot", omit_header=True)
    missing: dict[str, int] = {}
    for code in UI_LANGUAGES:
        if code == "en":
            continue
        catalog = read_catalog(code, folder)
        catalog.update(template, no_fuzzy_matching=True, update_creation_date=False)
        catalog.obsolete.clear()
        _write(catalog, folder / f"{code}.po")
        missing[code] = sum(1 for m in catalog if m.id and not m.string)
    return missing


_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|%%")
_TAG = re.compile(r"<[a-zA-Z/][^>]*>")
_COUNT = {"%(num)d", "%(num)s"}


def _placeholders(text: str) -> set[str]:
    return {m.group(0) for m in _PLACEHOLDER.finditer(text)}


def translation_problems(singular: str, plural: str | None, translated: str) -> list[str]:
    """Why ``translated`` cannot stand for the English ``singular`` (or ``plural``), if it cannot.

    Its placeholders must be the English ones (ngettext's count may be left out of a
    singular form, as in "one day"); it may not add markup; it must format.
    """
    problems = []
    needed = _placeholders(plural or singular) - _COUNT
    allowed = _placeholders(singular) | _placeholders(plural or singular)
    got = _placeholders(translated)
    if not needed <= got <= allowed:
        lost, extra = sorted(needed - got), sorted(got - allowed)
        problems.append(
            f"placeholders differ (missing {', '.join(lost) or 'none'}, "
            f"unknown {', '.join(extra) or 'none'}): keep them exactly as in the English"
        )
    if _TAG.search(translated) and not _TAG.search(singular):
        problems.append("adds markup the English does not have: remove the <...> tags")
    try:
        translated % {name: 1 for name in re.findall(r"%\((\w+)\)", translated)}
    except (KeyError, ValueError, TypeError) as exc:
        problems.append(f"does not format ({exc}): write a literal % as %%")
    return problems


def _english(message: Message) -> tuple[str, str | None]:
    """A message's English: its singular, and its plural (``None`` unless it has one)."""
    if isinstance(message.id, (tuple, list)):
        return str(message.id[0]), str(message.id[1])
    return str(message.id), None


def _translations(message: Message) -> list[str]:
    """A message's translations: one, or one per plural form ("" where empty)."""
    if isinstance(message.string, (tuple, list)):
        return [str(form or "") for form in message.string]
    return [str(message.string or "")]


def catalog_problems(catalog: Catalog, source: Catalog) -> list[str]:
    """Every string of ``source`` that ``catalog`` lacks, leaves empty, marks fuzzy or breaks."""
    problems = []
    for message in source:
        if not message.id:
            continue
        singular, plural = _english(message)
        entry = catalog.get(message.id, context=message.context)
        if entry is None:
            problems.append(f"missing: {singular!r}")
            continue
        strings = _translations(entry)
        if entry.fuzzy or not all(strings):
            problems.append(f"untranslated{' (fuzzy)' if entry.fuzzy else ''}: {singular!r}")
            continue
        for translated in strings:
            problems.extend(
                f"{singular!r} -> {translated!r}: {problem}"
                for problem in translation_problems(singular, plural, translated)
            )
    return problems


def _review_key(message: Message, form: int | None) -> str:
    singular, plural = _english(message)
    english = singular if plural is None else f"{singular}\x00{plural}"
    context = message.context
    digest = hashlib.sha256(f"{context or ''}\x04{english}".encode()).hexdigest()[:16]
    return f"ui-{digest}" if form is None else f"ui-{digest}-{form}"


def review_rows(code: str, folder: Path | None = None) -> list[dict[str, str]]:
    """Catalog ``code`` as rows of a ``post_edit`` annotation project: each string's English
    (``source``) and its translation (``draft``), one row per plural form."""
    rows = []
    for message in read_catalog(code, folder):
        if not message.id:
            continue
        singular, plural = _english(message)
        strings = _translations(message)
        if plural is None:
            key = _review_key(message, None)
            rows.append({"id": key, "source": singular, "draft": strings[0] or singular})
            continue
        for form, translated in enumerate(strings):
            english = singular if form == 0 else plural
            key = _review_key(message, form)
            rows.append({"id": key, "source": english, "draft": translated or english})
    return rows


@dataclass
class ReviewedCatalog:
    """What importing a reviewed release changed (or would change)."""

    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    unknown: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def import_reviewed(
    code: str, reviewed: Iterable[Mapping[str, object]], folder: Path | None = None
) -> ReviewedCatalog:
    """Write the reviewed translations (``id`` and ``reference`` of a released
    ``post_edit`` dataset's rows) into catalog ``code``.

    All or nothing: when any reviewed translation would break its string
    (``translation_problems``), the catalog is left as it was and the problems
    are returned. Rows whose id names no string of the catalog (strings since
    removed) are listed, not an error.
    """
    catalog = read_catalog(code, folder)
    by_key: dict[str, tuple[Message, int | None]] = {}
    for message in catalog:
        if not message.id:
            continue
        if _english(message)[1] is None:
            by_key[_review_key(message, None)] = (message, None)
            continue
        for index in range(max(len(_translations(message)), 2)):
            by_key[_review_key(message, index)] = (message, index)
    outcome = ReviewedCatalog()
    for row in reviewed:
        item_id, reference = str(row.get("id") or ""), row.get("reference")
        key = item_id.split(".", 1)[-1]  # a released id is <language>.<key>
        if key not in by_key:
            outcome.unknown.append(item_id)
            continue
        if not isinstance(reference, str) or not reference.strip():
            outcome.problems.append(f"{item_id}: no reviewed translation (reference is empty)")
            continue
        message, form = by_key[key]
        singular, plural = _english(message)
        problems = translation_problems(singular, plural, reference)
        outcome.problems.extend(f"{item_id} ({singular!r}): {p}" for p in problems)
        if problems:
            continue
        strings = _translations(message)
        if form is None:
            if strings[0] == reference:
                outcome.unchanged += 1
                continue
            message.string = reference
        else:
            strings += [""] * (form + 1 - len(strings))
            if strings[form] == reference:
                outcome.unchanged += 1
                continue
            strings[form] = reference
            message.string = tuple(strings)
        message.flags.discard("fuzzy")
        outcome.changed.append(item_id)
    if not outcome.problems and outcome.changed:
        _write(catalog, (folder or TRANSLATIONS) / f"{code}.po")
    return outcome


def main() -> None:
    missing = refresh()
    for code, count in missing.items():
        state = f"{count} strings to translate" if count else "complete"
        print(f"{UI_LANGUAGES[code]} ({code}): {state}")
    sys.exit(0)


if __name__ == "__main__":
    main()
