"""Helpers for the browser tests: Debian's chromium through playwright, Sabha on a port, checks.

``browser`` is a fixture (``conftest.py`` imports it for every test): headless
``/usr/bin/chromium`` (``make browser`` installs it and ``fonts-noto-core``),
skipped where it or playwright is missing, except under CI, where that fails.
``serve`` runs Sabha's web app on a loopback port in a thread.
``page_problems`` checks what a page shows in the current viewport: nothing
wider than the viewport, headings, table semantics, ``lang``/``dir`` on text
in another script, text contrast; ``keyboard_problems`` checks that Tab moves
a visible focus ring onto links and buttons. Both return problems as
sentences (empty: none), so a test can gather them over many pages.
Screenshots go to ``artifacts_dir(name)``: ``$SABHA_TEST_ARTIFACTS/<name>``
(default ``tests/artifacts/``, ignored by git; CI keeps that folder).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sabha.platform.settings import Settings

REPO = Path(__file__).resolve().parents[1]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts_dir(test_name: str) -> Path:
    """Where a test's screenshots go: ``$SABHA_TEST_ARTIFACTS/<test>`` (default tests/artifacts)."""
    root = Path(os.environ.get("SABHA_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    folder = root / test_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Debian chromium through playwright (skipped where neither is installed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            raise AssertionError(f"{CHROMIUM} is missing: run `make browser`")
        pytest.skip(f"{CHROMIUM} is missing: run `make browser`")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """Sabha's web app on a loopback port, in a thread, until the block ends; yields its URL."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    from sabha.platform.app import create_app

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    server = make_server(
        "127.0.0.1", 0, create_app(settings), threaded=True, request_handler=QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


# Runs in the page; returns a list of problems as sentences. Kept to what a person would
# notice: content that makes the page scroll sideways, headings a screen reader cannot
# outline, header cells that do not say what they head, text in another script with no
# lang/dir, and text too faint to read (WCAG 2 contrast, 4.5:1 for body text).
_PAGE_CHECKS = r"""
(viewportWidth) => {
  const problems = [];
  // A phone browser widens its layout viewport to fit content that is too wide (and
  // shrinks the page to fit), so the width asked for is the measure, not innerWidth.
  const innerWidth = Math.min(window.innerWidth, viewportWidth);
  const describe = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += "#" + el.id;
    if (el.classList.length) text += "." + [...el.classList].join(".");
    const words = (el.innerText || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return words ? `${text} "${words}"` : text;
  };

  // Nothing wider than the viewport: wide tables scroll inside their own box.
  const scrollWidth = Math.max(document.documentElement.scrollWidth, window.innerWidth);
  if (scrollWidth > innerWidth) {
    const clipped = (el) => {
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const overflow = getComputedStyle(a).overflowX;
        if (overflow === "auto" || overflow === "scroll" || overflow === "hidden") return true;
      }
      return false;
    };
    const wide = [...document.body.querySelectorAll("*")].filter(
      (el) => el.getBoundingClientRect().right > innerWidth + 1 && !clipped(el)
    );
    // The outermost offenders say where the fix goes.
    const outermost = wide.filter((el) => !wide.includes(el.parentElement)).slice(0, 4);
    problems.push(
      `the page is ${scrollWidth} px wide in a ${innerWidth} px viewport; too wide: ` +
        outermost.map(describe).join(", ")
    );
  }

  // <html lang>, one h1, no skipped heading levels.
  const lang = document.documentElement.getAttribute("lang");
  if (!lang) problems.push("<html> has no lang attribute");
  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")];
  const h1s = headings.filter((h) => h.tagName === "H1").length;
  if (h1s !== 1) problems.push(`${h1s} h1 headings (want exactly one)`);
  let previous = 0;
  for (const h of headings) {
    const level = Number(h.tagName[1]);
    if (level > previous + 1) {
      problems.push(`heading level skipped: ${describe(h)} (h${level}) after h${previous}`);
    }
    previous = level;
  }

  // Table semantics: header cells say what they head; each table is named.
  document.querySelectorAll("table").forEach((table, index) => {
    const name = `table ${index + 1} (${describe(table.rows[0] || table)})`;
    const columnHeads = [...table.querySelectorAll("thead th")];
    const rowHeads = [...table.querySelectorAll("th")].filter((th) => !th.closest("thead"));
    const badColumns = columnHeads.filter((th) => !["col", "colgroup"].includes(th.scope));
    const badRows = rowHeads.filter((th) => !["row", "rowgroup"].includes(th.scope));
    if (badColumns.length) {
      problems.push(
        `${name}: ${badColumns.length} of ${columnHeads.length} <th> in <thead> lack scope="col"`
      );
    }
    if (badRows.length) {
      problems.push(`${name}: ${badRows.length} row-header <th> lack scope="row"`);
    }
    const named = table.querySelector(":scope > caption") ||
      table.getAttribute("aria-label") || table.getAttribute("aria-labelledby");
    if (!named) problems.push(`${name}: no <caption> (or aria-label)`);
  });

  // Text in another script than the interface's carries lang or dir (so it is voiced and
  // laid out right); right-to-left text is laid out right to left.
  const scripts = {
    Arab: /[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]/,
    Deva: /[\u0900-\u097F]/,
    Taml: /[\u0B80-\u0BFF]/,
    Beng: /[\u0980-\u09FF]/,
  };
  const uiScript = { hi: "Deva", ta: "Taml" }[(lang || "").split("-")[0]] || "Latn";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const unmarked = new Set();
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    // A plot is an image: its name is its aria-label, its <title>s are tooltips.
    if (!parent || parent.closest("script, style, pre, svg")) continue;
    for (const [script, pattern] of Object.entries(scripts)) {
      if (script === uiScript || !pattern.test(node.data)) continue;
      const marked = parent.closest("[lang], [dir]");
      if (!marked || marked === document.documentElement) unmarked.add(describe(parent));
      if (script === "Arab" && getComputedStyle(parent).direction !== "rtl") {
        problems.push(`right-to-left text laid out left to right: ${describe(parent)}`);
      }
    }
    // Bidi mix-ups: English laid out right to left ("chrF++" reads "++chrF"), and
    // Urdu and English in one run, where dir="auto" turns the English around.
    const arabic = scripts.Arab.test(node.data);
    const latinWords = (node.data.match(/[A-Za-z]{2,}/g) || []).length;
    if (!arabic && latinWords && getComputedStyle(parent).direction === "rtl") {
      problems.push(`left-to-right text laid out right to left: ${describe(parent)}`);
    }
    if (arabic && latinWords >= 3) {
      problems.push(
        `Urdu and English share one run of text (give the Urdu its own element with ` +
          `dir="auto"): ${describe(parent)}`
      );
    }
  }
  if (unmarked.size) {
    const some = [...unmarked].slice(0, 4).join(", ");
    problems.push(`text in another script with no lang or dir: ${some}`);
  }

  // Contrast of key text against what is behind it (WCAG 2: 4.5:1 for body text).
  const rgb = (color) => (color.match(/[\d.]+/g) || []).map(Number);
  const background = (el) => {
    for (let a = el; a; a = a.parentElement) {
      const c = rgb(getComputedStyle(a).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c;
    }
    return [255, 255, 255];
  };
  const luminance = ([r, g, b]) => {
    const channel = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  const selectors = ["header a", "main p", "main a", ".muted", "th", "td", "code", ".state"];
  for (const selector of selectors) {
    const el = [...document.querySelectorAll(selector)].find((e) => e.innerText.trim());
    if (!el) continue;
    const [a, b] = [luminance(rgb(getComputedStyle(el).color)), luminance(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) {
      problems.push(`contrast ${ratio.toFixed(2)}:1 (under 4.5:1) of ${selector}: ${describe(el)}`);
    }
  }
  return problems;
}
"""

# Where keyboard focus is, and whether a person can see it there.
_FOCUSED = r"""
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const box = el.getBoundingClientRect();
  const style = getComputedStyle(el);
  const ring = (style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0) ||
    style.boxShadow !== "none";
  return {
    tag: el.tagName.toLowerCase(),
    text: (el.innerText || el.value || "").trim().slice(0, 40),
    visible: box.width > 0 && box.height > 0 && box.right > 0 && box.bottom > 0 &&
      box.left < window.innerWidth && style.visibility !== "hidden",
    ring: ring && el.matches(":focus-visible"),
  };
}
"""


def page_problems(page: Any) -> list[str]:
    """What is wrong with the page as shown in the current viewport (see ``_PAGE_CHECKS``)."""
    return list(page.evaluate(_PAGE_CHECKS, page.viewport_size["width"]))


def keyboard_problems(page: Any, presses: int = 3) -> list[str]:
    """Tab ``presses`` times: each moves a visible focus ring onto a link or button.

    Call it right after a page loaded, so the first Tab starts at the top.
    """
    problems = []
    for press in range(1, presses + 1):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUSED)
        if focused is None:
            problems.append(f"Tab {press} focused nothing")
        elif focused["tag"] not in ("a", "button", "input", "select", "textarea"):
            problems.append(f"Tab {press} focused a <{focused['tag']}>, not a link or button")
        elif not (focused["visible"] and focused["ring"]):
            problems.append(
                f"Tab {press} focused <{focused['tag']}> {focused['text']!r} "
                f"without a visible focus ring (visible={focused['visible']})"
            )
    return problems
