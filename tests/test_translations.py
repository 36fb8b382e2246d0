"""The interface in English, Hindi, Swahili and Tamil: every string marked, every string translated.

Three checks fail on an untranslated string:
- a template's visible text (or a ``title``, ``aria-label``, ``placeholder``, ``alt``)
  that is not inside ``_()``/``{% trans %}``;
- a marked string that a language's catalog lacks, leaves empty or marks fuzzy;
- a translation whose placeholders differ from the English (it would raise or
  drop a number) or that adds markup the English does not have.
Then the pages: the language chosen from the browser or the switcher, the
switcher's cookie, its ``next`` that never leaves the site, and pages cached per
language.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from conftest import ScriptedEngine, run_with
from flask.testing import FlaskClient

from sabha.platform.app import create_app
from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.catalog import add_model
from sabha.platform.db import make_engine, session_scope, upgrade_database
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.queue import create_job
from sabha.platform.settings import Settings
from sabha.platform.web.catalogs import (
    SOURCE_FOLDERS,
    catalog_problems,
    extract_messages,
    read_catalog,
)
from sabha.platform.web.i18n import COOKIE, TRANSLATIONS, UI_LANGUAGES

REPO = Path(__file__).resolve().parents[1]
TRANSLATED = [code for code in UI_LANGUAGES if code != "en"]
TEMPLATES = sorted(
    path for folder in SOURCE_FOLDERS for path in (REPO / folder).glob("**/templates/*.html")
)
# Words that stay as they are in every language: names, formats, commands, units.
KEEP = {
    "Sabha", "JSON", "CSV", "Parquet", "YAML", "vLLM", "GB", "GPU", "OAuth2", "SHA", "n",
    "zip", "chrF", "Label", "Studio", "API", "hi", "Deva", "sw", "Latn", "ta", "Taml", "ur",
    "Arab", "owner", "name", "laptop", "lab", "gpus", "meta", "llama", "Llama", "B", "models",
    "my", "model",
}  # fmt: skip
_VISIBLE_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_TRANS_BLOCK = re.compile(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", re.S)
_WORD = re.compile(r"[A-Za-z]{2,}")
_ATTRIBUTE = re.compile(r'[\w-]+="[^"]*"')
_PATH = re.compile(r"(?<!\S)/\S*")


class _VisibleText(HTMLParser):
    """Text a reader sees (outside <code>, <pre>) and the attributes a screen reader reads."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._verbatim = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("code", "pre"):
            self._verbatim += 1
        self.found.extend(v for k, v in attrs if k in _VISIBLE_ATTRIBUTES and v)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("code", "pre"):
            self._verbatim = max(self._verbatim - 1, 0)

    def handle_data(self, data: str) -> None:
        if not self._verbatim:
            self.found.append(data)


def _unmarked(source: str) -> list[str]:
    """English words of a template that no ``_()`` or ``{% trans %}`` covers."""
    bare = _JINJA.sub(" ", _TRANS_BLOCK.sub(" ", source))
    parser = _VisibleText()
    parser.feed(bare)
    # /api/v1/... stays as it is; name="value" outside a tag is a macro writing attributes.
    texts = (_ATTRIBUTE.sub(" ", _PATH.sub(" ", text)) for text in parser.found)
    words = (word for text in texts for word in _WORD.findall(text))
    return sorted({word for word in words if word not in KEEP})


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_every_template_string_is_marked_for_translation(template: Path) -> None:
    assert _unmarked(template.read_text(encoding="utf-8")) == [], (
        f"{template.relative_to(REPO)} shows English that is not marked for translation: "
        'wrap it in {{ _("...") }} or {% trans %}...{% endtrans %}, then run `make translations`'
    )


def test_the_check_finds_unmarked_text() -> None:
    """The template check above can fail: it finds text, attributes, and skips code."""
    assert _unmarked('<p>Hello {{ _("there") }}</p>') == ["Hello"]
    assert _unmarked('<a title="Open it" href="{{ u }}">{{ _("x") }}</a>') == ["Open", "it"]
    assert _unmarked("<p><code>sabha eval</code> {% trans %}Run it{% endtrans %}</p>") == []


@pytest.fixture(scope="module")
def source_messages() -> Catalog:
    return extract_messages(REPO)


def test_the_catalog_template_is_up_to_date(source_messages: Catalog) -> None:
    with (TRANSLATIONS / "messages.pot").open("rb") as handle:
        pot = read_po(handle)
    assert {m.id for m in pot if m.id} == {m.id for m in source_messages if m.id}, (
        "messages.pot is older than the templates and code: run `make translations`"
    )


@pytest.mark.parametrize("code", TRANSLATED)
def test_every_marked_string_is_translated(code: str, source_messages: Catalog) -> None:
    problems = catalog_problems(read_catalog(code), source_messages)
    assert not problems, (
        f"{UI_LANGUAGES[code]} ({code}.po): {len(problems)} problems; first ones:\n"
        + "\n".join(problems[:25])
    )


def test_the_catalog_check_can_fail(source_messages: Catalog) -> None:
    """A missing string, an empty one, a lost placeholder and added markup are each found."""
    catalog = read_catalog("hi")
    assert catalog_problems(catalog, source_messages) == []
    with_count = next(m for m in source_messages if isinstance(m.id, str) and "%(n)s" in m.id)
    plain = next(m for m in source_messages if m.id and isinstance(m.id, str) and "%" not in m.id)
    other = next(
        m
        for m in source_messages
        if m.id and isinstance(m.id, str) and "%" not in m.id and m != plain
    )
    catalog[with_count.id].string = "कुछ नहीं"  # the number is gone
    catalog[plain.id].string = "<script>x</script>"
    catalog[other.id].string = ""
    found = "\n".join(catalog_problems(catalog, source_messages))
    assert "placeholders differ" in found and "adds markup" in found and "untranslated" in found
    del catalog[plain.id]
    assert "missing" in "\n".join(catalog_problems(catalog, source_messages))


def _translation(code: str, english: str) -> str:
    entry = read_catalog(code).get(english)
    assert entry is not None and entry.string, f"{code}.po lacks a translation of {english!r}"
    return str(entry.string)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    """A site with the starter benchmarks and one model scored on each."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("site"))
    db = make_engine(settings.resolved_database_url)
    upgrade_database(db)
    with session_scope(db) as session:
        model = add_model(session, "echo", repo_id="org/echo", revision="e" * 40)
        jobs = [
            create_job(
                session,
                model,
                register_benchmark(
                    session, load_benchmark_file(p), settings.resolved_artifacts_dir
                )[0],
            )[0].id
            for p in starter_benchmark_paths()
        ]
    run_with(db, jobs, ScriptedEngine(answer=lambda r: "safe"))
    db.dispose()
    return create_app(settings).test_client()


@pytest.mark.parametrize("code", TRANSLATED)
def test_the_browser_language_chooses_the_interface(client: FlaskClient, code: str) -> None:
    client.get("/ui-language/x")  # no cookie: the browser decides
    page = client.get("/", headers={"Accept-Language": f"{code},en;q=0.5"})
    html = page.get_data(as_text=True)
    assert f'<html lang="{code}" dir="ltr">' in html
    assert f"<h1>{_translation(code, 'Benchmarks')}</h1>" in html
    assert "Accept-Language" in page.headers["Vary"]
    # Every language is offered by its own name; the current one is not a link.
    for autonym in UI_LANGUAGES.values():
        assert autonym in html
    assert f'<span lang="{code}" aria-current="true">' in html


@pytest.mark.parametrize("code", list(UI_LANGUAGES))
def test_every_public_page_renders_in_every_language(client: FlaskClient, code: str) -> None:
    """Each translation formats on the real pages: no error, no placeholder left over."""
    pages = [
        "/",
        "/benchmarks/kisan-advisory",
        "/benchmarks/indic-safety",
        "/languages/hi-Deva",
        "/models/echo",
        "/models/echo/vs/echo",
        "/datasets/kisan-advisory",
        "/datasets/kisan-advisory/card",
        "/jobs/1",
        "/login",
        "/models/nobody",
    ]
    for path in pages:
        answer = client.get(path, headers={"Accept-Language": code})
        html = answer.get_data(as_text=True)
        assert answer.status_code in (200, 404), (path, answer.status_code)
        assert f'<html lang="{code}"' in html, path
        assert "%(" not in html and "%%" not in html, (path, code)


def test_english_without_a_preference(client: FlaskClient) -> None:
    html = client.get("/", headers={"Accept-Language": "fr, de;q=0.5"}).get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in html and "<h1>Benchmarks</h1>" in html


def test_the_switcher_remembers_the_choice_over_the_browser(client: FlaskClient) -> None:
    answer = client.get("/ui-language/ta?next=/languages/hi-Deva")
    assert answer.status_code == 303 and answer.headers["Location"] == "/languages/hi-Deva"
    cookie = answer.headers["Set-Cookie"]
    assert f"{COOKIE}=ta" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    html = client.get("/", headers={"Accept-Language": "hi"}).get_data(as_text=True)
    assert '<html lang="ta"' in html and _translation("ta", "Benchmarks") in html
    client.get("/ui-language/en")
    english = client.get("/", headers={"Accept-Language": "hi"}).get_data(as_text=True)
    assert "<h1>Benchmarks</h1>" in english
    client.delete_cookie(COOKIE)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/\r\nSet-Cookie: x=1",
        "javascript:alert(1)",
        "",
        "/" + "a" * 3000,
    ],
)
def test_the_switcher_never_sends_anyone_off_the_site(client: FlaskClient, target: str) -> None:
    answer = client.get("/ui-language/hi", query_string={"next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/"
    client.delete_cookie(COOKIE)


@pytest.mark.parametrize("code", ["fr", "HI", "hi-IN", "x" * 50, "%3Cscript%3E"])
def test_unknown_interface_languages_are_404_and_set_nothing(
    client: FlaskClient, code: str
) -> None:
    answer = client.get(f"/ui-language/{code}")
    assert answer.status_code == 404 and "Set-Cookie" not in answer.headers


def test_a_forged_cookie_falls_back_to_the_browser(client: FlaskClient) -> None:
    client.set_cookie(COOKIE, "xx<script>")
    html = client.get("/", headers={"Accept-Language": "sw"}).get_data(as_text=True)
    assert '<html lang="sw"' in html and "xx<script" not in html
    client.delete_cookie(COOKIE)


def test_cached_leaderboards_are_kept_per_language(client: FlaskClient) -> None:
    """The leaderboard body is cached: a Hindi reader must not get the English copy, nor the
    reverse, and the ETag (what a shared cache keys on, with Vary) differs."""
    path = "/benchmarks/kisan-advisory"
    english = client.get(path, headers={"Accept-Language": "en"})
    hindi = client.get(path, headers={"Accept-Language": "hi"})
    again = client.get(path, headers={"Accept-Language": "en"})
    rank = _translation("hi", "Rank")
    assert f'<th scope="col">{rank}</th>' in hindi.get_data(as_text=True)
    assert rank not in english.get_data(as_text=True) and rank not in again.get_data(as_text=True)
    assert (
        english.headers["ETag"]
        != hindi.headers["ETag"]
        == client.get(path, headers={"Accept-Language": "hi"}).headers["ETag"]
    )
    assert "Accept-Language" in english.headers["Vary"]
