"""Acceptance in a real browser: a model developer's way through Sabha, on a desktop and a phone.

Debian's ``chromium``, driven by ``playwright``, signs in through a real
OpenID Connect provider (``oidc_provider.py``), submits a tiny local model
through the web form, and reloads the submission page until the job is
finished: a volunteer agent (``sabha worker run`` with the stand-in engine,
no vLLM) runs its shards over HTTP against the same server. Then it opens
the leaderboard, switches the interface to Hindi, and opens an Urdu
benchmark and the model's page.

Every page is looked at in a 1280 × 800 desktop window and on a 390 × 844
phone: nothing wider than the viewport, one h1 and no skipped heading levels,
header cells with ``scope`` and tables with a caption, ``lang``/``dir`` on text
in another script (Urdu laid out right to left), contrast of key text of at
least 4.5:1, and Tab moving a visible focus ring onto links. Problems are
gathered over all pages and reported together at the end. Screenshots of
every page at both sizes go to ``$SABHA_TEST_ARTIFACTS/browser-site/``
(default ``tests/artifacts/``; CI keeps that folder).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from apitools import pool_credential
from babel.messages.pofile import read_po
from browsertools import artifacts_dir, keyboard_problems, page_problems, serve
from conftest import write_benchmark
from oidc_provider import OidcTestProvider, OidcUser
from pooltools import agent, stop_agent
from sqlalchemy.engine import Engine
from sqlmodel import select
from test_submissions import TINY_CONFIG, model_folder

from sabha.platform.benchmarks import load_benchmark_file
from sabha.platform.db import session_scope
from sabha.platform.domain import AnnotationProject, Role, User
from sabha.platform.services.annotation import create_annotation_project, upload_source_items
from sabha.platform.services.annotators import set_annotator_languages
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.users import grant_role
from sabha.platform.settings import OidcProvider, Settings
from sabha.platform.web.i18n import TRANSLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT_MS = 30_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
ASHA = OidcUser("uni-4711", "asha@example.org", "asha", "आशा वर्मा")
MODEL = "tiny-browser"
BENCHMARK = "kisan-urdu"
URDU_TITLE = "کسان کے سوالات"
URDU_DESCRIPTION = "کھیتی باڑی کے بارے میں چھوٹے سوالات اور ان کے جوابات۔"
QUESTIONS = [
    ("ur-Arab", "گندم کو پہلا پانی کب دیں؟", "بوائی کے تین ہفتے بعد پہلا پانی دیں۔"),
    ("ur-Arab", "دھان کی پنیری کب لگائیں؟", "مون سون کی پہلی اچھی بارش کے بعد لگائیں۔"),
    ("hi-Deva", "गेहूं की सिंचाई कब करें?", "पहली सिंचाई बुवाई के तीन सप्ताह बाद करें।"),
]


def _urdu_benchmark(folder: Path) -> Path:
    items = [
        {
            "id": f"k-{i:03d}",
            "language": language,
            "split": "test",
            "input": {"question": question},
            "reference": reference,
        }
        for i, (language, question, reference) in enumerate(QUESTIONS * 3)
    ]
    dataset = {
        "name": BENCHMARK,
        "items": "tiny-gen.jsonl",
        "license": "CC-BY-4.0",
        "card": {
            "summary": "Farmers' questions in Urdu and Hindi, written for a test.",
            "collection_process": "Written for a test.",
            "intended_use": "Tests.",
            "limitations": "Tiny.",
        },
    }
    return write_benchmark(
        folder,
        items,
        name=BENCHMARK,
        title=URDU_TITLE,
        description=URDU_DESCRIPTION,
        languages=["ur-Arab", "hi-Deva"],
        dataset=dataset,
    )


def _hindi_for(msgid: str) -> str | None:
    """The Hindi catalog's translation of ``msgid`` (None when it has none, or a fuzzy one)."""
    with (TRANSLATIONS / "hi.po").open("rb") as po:
        message = read_po(po, locale="hi").get(msgid)
    if message is None or message.fuzzy or not isinstance(message.string, str):
        return None
    return message.string or None


def _rtl_problems(page: Any, selector: str) -> list[str]:
    """The first element matching ``selector`` has dir rtl/auto and is laid out right to left."""
    element = page.locator(selector).first
    direction = element.evaluate("el => getComputedStyle(el).direction")
    dir_attribute = element.get_attribute("dir")
    if dir_attribute in ("rtl", "auto") and direction == "rtl":
        return []
    return [f"{selector} on {page.url}: dir={dir_attribute!r}, computed direction {direction}"]


class Visitor:
    """A desktop page and a phone page in one signed-in browser; checks and screenshots each."""

    def __init__(self, browser: Any, site: str, shots: Path) -> None:
        self.site = site
        self.shots = shots
        self.problems: list[str] = []
        self.page_problems: dict[str, list[str]] = {}
        self.blocked: list[str] = []  # what Chromium refused under Sabha's CSP
        self.desktop_context = browser.new_context(viewport=DESKTOP, locale="en-GB")
        self.phone_context = browser.new_context(
            viewport=PHONE, locale="en-GB", is_mobile=True, has_touch=True, device_scale_factor=2
        )
        self.desktop = self.desktop_context.new_page()
        self.phone = self.phone_context.new_page()
        for page in (self.desktop, self.phone):
            page.set_default_timeout(WAIT_MS)
            page.on("console", self._console(page))
        self.step = 0

    def _console(self, page: Any) -> Callable[[Any], None]:
        def on_console(message: Any) -> None:
            if "Content Security Policy" in message.text and page.url.startswith(self.site):
                self.blocked.append(f"{page.url}: {message.text}")

        return on_console

    def share_cookies(self) -> None:
        """The phone gets the desktop's sign-in and interface language."""
        self.phone_context.clear_cookies()
        self.phone_context.add_cookies(self.desktop_context.cookies())

    def look(self, what: str) -> None:
        """Open the desktop page's URL afresh on both; check and photograph each."""
        self.step += 1
        url = self.desktop.url
        for size, page in (("desktop", self.desktop), ("phone", self.phone)):
            page.goto(url)
            width, height = page.viewport_size["width"], page.viewport_size["height"]
            for problem in keyboard_problems(page) + page_problems(page):
                where = f"{what} ({url.removeprefix(self.site)}): {problem}"
                self.page_problems.setdefault(where, []).append(f"{width}×{height}")
            shot = self.shots / f"{self.step:02d}-{what}-{size}.png"
            page.screenshot(path=str(shot), full_page=True)

    def report(self) -> list[str]:
        """Every problem found, each page's once with the viewports it was seen in."""
        seen = [f"{where} (at {', '.join(sizes)})" for where, sizes in self.page_problems.items()]
        return self.problems + seen

    def close(self) -> None:
        self.desktop_context.close()
        self.phone_context.close()


def _watch_until_finished(page: Any, seconds: float, alive: Any) -> str:
    """Reload the submission page until it shows a finished state; return that state."""
    deadline = time.monotonic() + seconds
    while True:
        state = page.locator("main p .state").first.inner_text().strip()
        if state in ("completed", "failed", "cancelled"):
            return str(state)
        assert alive.poll() is None, "the volunteer agent exited before the job finished"
        assert time.monotonic() < deadline, f"the submission still reads {state!r}"
        time.sleep(0.5)
        page.reload()


def test_a_model_developer_signs_in_submits_watches_and_browses_on_desktop_and_phone(
    browser: Any, db: Engine, tmp_path: Path
) -> None:
    with OidcTestProvider(ASHA) as provider:
        settings = Settings(
            data_dir=tmp_path / "web-data",
            database_url=db.url.render_as_string(hide_password=False),
            oidc_providers=[
                OidcProvider(
                    name="test",
                    title="Test University",
                    issuer=provider.issuer,
                    client_id="sabha-test",
                    client_secret="test-client-secret",
                )
            ],
            rate_limits=False,
            allow_local_models=True,
            local_models_for_volunteers=True,  # the agent runs on this machine
            local_pool_memory_gb=2.0,
            shard_size=3,
            # One volunteer pool, trusted: this test is about the pages, not replicas.
            replication_new_pool_shards=0,
            replication_fraction=0.0,
            replication_audit_jobs=False,
        )
        loaded = load_benchmark_file(_urdu_benchmark(tmp_path / "bench"))
        with session_scope(db) as session:
            register_benchmark(session, loaded, settings.resolved_artifacts_dir)
        credential = pool_credential(db)
        folder = model_folder(tmp_path, "tiny", TINY_CONFIG)
        with serve(settings) as site:
            provider.allow_redirect_uri(f"{site}/login/oidc/test/callback")
            _browse(browser, site, db, tmp_path, folder, credential)


def _browse(
    browser: Any, site: str, db: Engine, tmp_path: Path, folder: Path, credential: tuple[str, str]
) -> None:
    visitor = Visitor(browser, site, artifacts_dir("browser-site"))
    page = visitor.desktop
    volunteer = None
    try:
        # Sign in through the OpenID Connect provider; an admin makes asha a submitter.
        page.goto(f"{site}/login")
        page.get_by_role("link", name=re.compile("Test University")).click()
        page.wait_for_url(f"{site}/account")
        assert page.get_by_text(ASHA.name).count() >= 1
        with session_scope(db) as session:
            asha = session.exec(select(User).where(User.username == "asha")).one()
            grant_role(session, asha, Role.SUBMITTER)
        visitor.share_cookies()

        # Submit the tiny model through the form.
        page.goto(f"{site}/submissions/new")
        page.check("input[name=source][value=local]")
        page.fill("input[name=path]", str(folder))
        page.fill("input[name=name]", MODEL)
        page.check(f"input[name=benchmarks][value={BENCHMARK}]")
        page.fill("input[name=license]", "apache-2.0")
        page.get_by_role("button", name="Check and submit").click()
        page.wait_for_url(re.compile(rf"^{re.escape(site)}/submissions/\d+$"))
        assert page.locator("main p .state").first.inner_text() in ("queued", "running")

        # A volunteer's agent runs the job over HTTP; the page is reloaded until it finished.
        volunteer = agent(site, credential, "home-gpu", tmp_path, 0.05)
        state = _watch_until_finished(page, 90, volunteer)
        assert state == "completed", page.locator("main").inner_text()[:2000]
        shard_states = page.locator("table.shards .state").all_inner_texts()
        assert shard_states and set(shard_states) == {"done"}, shard_states
        assert page.get_by_role("link", name=re.compile(r"Results and provenance")).count() == 1
        visitor.look("submission")

        # The leaderboard, in English: the Urdu benchmark's title reads right to left.
        page.goto(site)
        assert page.locator("html").get_attribute("lang") == "en"
        assert page.locator("h1").inner_text() == "Benchmarks"
        assert page.get_by_role("link", name=URDU_TITLE).count() == 1
        visitor.problems += _rtl_problems(page, f"main a[href='/benchmarks/{BENCHMARK}']")
        visitor.look("leaderboard")

        # Switch the interface to Hindi with the switcher in the header.
        page.locator("nav.ui-lang a[hreflang=hi]").click()
        page.wait_for_url(f"{site}/")
        visitor.share_cookies()
        assert page.locator("html").get_attribute("lang") == "hi"
        heading = _hindi_for("Benchmarks")
        if heading is None:
            visitor.problems.append(
                'platform/web/translations/hi.po lacks a translation of msgid "Benchmarks" '
                "(the leaderboard's heading)"
            )
        elif page.locator("h1").inner_text() != heading:
            visitor.problems.append(
                f"the Hindi leaderboard's h1 reads {page.locator('h1').inner_text()!r}, "
                f"not hi.po's {heading!r}"
            )
        visitor.look("leaderboard-hindi")

        # The Urdu benchmark: its title and description right to left, the model ranked.
        page.get_by_role("link", name=URDU_TITLE).click()
        page.wait_for_url(f"{site}/benchmarks/{BENCHMARK}")
        assert page.locator("html").get_attribute("lang") == "hi"
        assert page.locator("h1").inner_text() == URDU_TITLE
        assert page.get_by_text(URDU_DESCRIPTION).count() == 1
        visitor.problems += _rtl_problems(page, "main h1")
        row = page.locator("tbody tr", has=page.get_by_role("link", name=MODEL))
        assert row.count() == 1, page.locator("main").inner_text()[:2000]
        assert re.search(r"\d+\.\d", row.inner_text()), row.inner_text()
        visitor.look("benchmark-urdu")

        # The model's page: its rank on the Urdu benchmark, the title right to left.
        row.get_by_role("link", name=MODEL).click()
        page.wait_for_url(f"{site}/models/{MODEL}")
        assert page.locator("h1").inner_text() == MODEL
        assert page.get_by_role("link", name=URDU_TITLE).count() >= 1
        visitor.problems += _rtl_problems(page, "main tbody [dir]")
        visitor.look("model")

        # As an annotator of Urdu: the projects to join and what to do next, on a phone too
        # (the Join button once sat off-screen at 390 px).
        with session_scope(db) as session:
            asha = session.exec(select(User).where(User.username == "asha")).one()
            grant_role(session, asha, Role.ANNOTATOR)
            asha_id = asha.id or 0
        set_annotator_languages(db, asha_id, ["ur-Arab"])
        project = create_annotation_project(
            db, "kisan-urdu-answers-with-a-long-name", "ur-Arab", "qa"
        )
        questions = tmp_path / "urdu-questions.jsonl"
        questions.write_text(
            "".join(
                json.dumps({"id": f"q{i}", "question": q}, ensure_ascii=False) + "\n"
                for i, (language, q, _) in enumerate(QUESTIONS)
                if language == "ur-Arab"
            ),
            encoding="utf-8",
        )
        upload_source_items(db, project.id or 0, questions)
        with session_scope(db) as session:  # as provisioning leaves it (no Label Studio here)
            stored = session.get(AnnotationProject, project.id)
            assert stored is not None
            stored.labelstudio_project_id = 7
            session.add(stored)
        page.goto(f"{site}/annotate")
        row = page.locator("tbody tr", has_text="kisan-urdu-answers-with-a-long-name")
        assert row.get_by_role("button").count() == 1
        visitor.look("annotate")
        page.goto(f"{site}/annotate/next")
        assert page.locator("html").get_attribute("lang") == "hi"
        visitor.look("annotate-next")
    except BaseException:
        page.screenshot(path=str(visitor.shots / "failure.png"), full_page=True)
        raise
    finally:
        if volunteer is not None:
            stop_agent(volunteer)
        visitor.close()
    assert visitor.blocked == [], "\n".join(visitor.blocked)
    assert visitor.report() == [], "\n".join(visitor.report())


FLAWED_PAGE = """<!doctype html><html><head><meta name="viewport" content="width=device-width">
<style>a:focus { outline: none; } .muted { color: #aaaaaa; } .wide { width: 600px; }</style>
</head><body><h1>One</h1><h1>Two</h1><h3>Skipped</h3>
<p class="muted">Too faint to read.</p><p><a href="#a">first</a> <a href="#b">second</a></p>
<table><thead><tr><th>Model</th></tr></thead><tbody><tr><th>tiny</th></tr></tbody></table>
<p>کسان کے سوالات</p><p dir="auto">کسان کے سوالات: chrF++ per language</p>
<p dir="rtl"><span>chrF++</span></p>
<div class="wide">A box wider than a phone.</div></body></html>"""


def test_the_page_checks_find_each_flaw_they_look_for(browser: Any) -> None:
    page = browser.new_page(viewport=PHONE, is_mobile=True)
    try:
        page.set_content(FLAWED_PAGE)
        keyboard = keyboard_problems(page, presses=2)
        found = page_problems(page)
    finally:
        page.close()
    assert keyboard == [
        f"Tab {n} focused <a> {text!r} without a visible focus ring (visible=True)"
        for n, text in ((1, "first"), (2, "second"))
    ]
    expected = [
        r"the page is \d+ px wide in a 390 px viewport; too wide: div\.wide",
        r"<html> has no lang attribute",
        r"2 h1 headings",
        r"heading level skipped: h3 \"Skipped\" \(h3\) after h1",
        r'table 1 .*: 1 of 1 <th> in <thead> lack scope="col"',
        r'table 1 .*: 1 row-header <th> lack scope="row"',
        r"table 1 .*: no <caption>",
        r"text in another script with no lang or dir: p",
        r"right-to-left text laid out left to right: p",
        r"Urdu and English share one run of text .*: p",
        r"left-to-right text laid out right to left: span",
        r"contrast 2\.\d\d:1 \(under 4\.5:1\) of \.muted",
    ]
    for pattern in expected:
        assert any(re.match(pattern, problem) for problem in found), (pattern, found)
    assert len(found) == len(expected), found
