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

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from .i18n import TRANSLATIONS, UI_LANGUAGES

__all__ = ["SOURCE_FOLDERS", "extract_messages", "read_catalog", "refresh"]

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


def read_catalog(code: str, folder: Path = TRANSLATIONS) -> Catalog:
    """The catalog of interface language ``code`` (empty if it has none yet)."""
    path = folder / f"{code}.po"
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


def main() -> None:
    missing = refresh()
    for code, count in missing.items():
        state = f"{count} strings to translate" if count else "complete"
        print(f"{UI_LANGUAGES[code]} ({code}): {state}")
    sys.exit(0)


if __name__ == "__main__":
    main()
