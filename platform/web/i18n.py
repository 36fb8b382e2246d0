"""The interface in English, Hindi, Swahili and Tamil (Flask-Babel).

The language of the interface (menus, headings, buttons; not the benchmark
data, which keeps its own) is, in this order:

1. the ``sabha_ui_lang`` cookie, set by ``/ui-language/<code>`` (the
   switcher in every page's header; no JavaScript);
2. the browser's ``Accept-Language``;
3. English.

Catalogs are the ``translations/<code>.po`` files beside this module; they are
compiled in memory when the app starts (no ``.mo`` files to forget to
rebuild). ``make translations`` refreshes ``messages.pot`` and the catalogs
from the templates and the code; ``tests/test_translations.py`` fails on a
string that is not marked or not translated. How to review a translation:
``docs/translations.md``.
"""

from __future__ import annotations

from functools import cached_property
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, abort, redirect, request
from flask_babel import Babel, Domain, get_locale
from werkzeug.wrappers import Response

__all__ = [
    "COOKIE",
    "TRANSLATIONS",
    "UI_LANGUAGES",
    "init_app",
    "safe_next",
    "ui_language",
]

TRANSLATIONS = Path(__file__).parent / "translations"
UI_LANGUAGES: dict[str, str] = {
    "en": "English",
    "hi": "हिन्दी",
    "sw": "Kiswahili",
    "ta": "தமிழ்",
}
"""Interface languages by code, each named in itself (autonyms)."""
COOKIE = "sabha_ui_lang"
_ONE_YEAR = 365 * 24 * 3600


def load_catalogs(folder: Path = TRANSLATIONS) -> dict[str, Translations]:
    """Each ``<code>.po`` of ``folder``, compiled in memory (fuzzy entries left out)."""
    catalogs: dict[str, Translations] = {}
    for code in UI_LANGUAGES:
        path = folder / f"{code}.po"
        if code == "en" or not path.exists():
            continue
        with path.open("rb") as po:
            catalog = read_po(po, locale=code)
        compiled = BytesIO()
        write_mo(compiled, catalog, use_fuzzy=False)
        compiled.seek(0)
        catalogs[code] = Translations(fp=compiled, domain="messages")
    return catalogs


class _CompiledDomain(Domain):
    """Translations from the catalogs compiled at start, by the request's locale."""

    def __init__(self, catalogs: dict[str, Translations]) -> None:
        super().__init__()
        self._catalogs = catalogs

    def get_translations(self) -> Translations | NullTranslations:
        return self._catalogs.get(ui_language(), NullTranslations())


class _Babel(Babel):
    def __init__(self, app: Flask, catalogs: dict[str, Translations]) -> None:
        self._catalogs = catalogs
        super().__init__(app, locale_selector=_select_locale)

    @cached_property
    def domain_instance(self) -> Domain:
        return _CompiledDomain(self._catalogs)


def _select_locale() -> str:
    chosen = request.cookies.get(COOKIE, "")
    if chosen in UI_LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(UI_LANGUAGES)) or "en"


def ui_language() -> str:
    """The interface language of this request (``en`` outside one)."""
    locale = get_locale()
    return str(locale) if locale is not None else "en"


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/`` (never another site)."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith(("//", "/\\"))
        or any(ord(c) < 0x20 or c == "\\" for c in target)
        or len(target) > 2000
    ):
        return "/"
    return target


def _switch(code: str) -> Response:
    """Remember ``code`` as this browser's interface language; back to ``?next=``."""
    if code not in UI_LANGUAGES:
        abort(404)
    response = redirect(safe_next(request.args.get("next")), 303)
    response.set_cookie(
        COOKIE,
        code,
        max_age=_ONE_YEAR,
        httponly=True,
        samesite="Lax",
        secure=bool(request.is_secure),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    """Flask-Babel with the compiled catalogs, the switcher route and the template helpers."""
    _Babel(app, load_catalogs())
    # {% trans %} blocks are extracted and looked up with their whitespace collapsed.
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.add_url_rule("/ui-language/<code>", "ui_language", _switch, methods=["GET"])
    app.jinja_env.globals.update(ui_language=ui_language, ui_languages=UI_LANGUAGES)
