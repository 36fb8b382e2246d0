from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import markdown
import nh3
import yaml
from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from markupsafe import Markup
from werkzeug.wrappers import Response as WerkzeugResponse

from sabha.platform.db import get_session
from sabha.platform.domain import Role
from sabha.platform.languages import describe_language, describe_region, text_direction
from sabha.platform.services.audit_bundle import scoring_runs_of_job
from sabha.platform.services.status import check_run_visible
from sabha.platform.web import current_roles, current_user
from sabha.platform.web.i18n import ui_language
from sabha.platform.wire import MODEL_NAME_PATTERN

from ..board import (
    benchmark_summaries,
    compare_models,
    data_card,
    dataset_file,
    dataset_page,
    language_page,
    language_summaries,
    leaderboard,
    run_details,
)
from ..board import model_page as model_page_of
from ..model_index import model_index_yaml
from ..plots import Bar, interval_bars
from ..public import Cell, ComparedBenchmark, LanguageRow, VersionedScore
from ._cache import cached_page, cached_view, http_caching, init_page_cache
from ._exports import leaderboard_csv, leaderboard_parquet

blueprint = Blueprint(
    "leaderboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/leaderboard",
)

_ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}


def init_app(app: Flask) -> None:
    """Register the leaderboard blueprint and its template helpers."""
    app.register_blueprint(blueprint)
    init_page_cache(app)
    app.after_request(http_caching)
    app.jinja_env.globals.update(
        describe_language=_describe_language,
        describe_region=describe_region,
        text_direction=text_direction,
        language_plot=_language_plot,
        model_plot=_model_plot,
        pair_plot=_pair_plot,
        history_plot=_history_plot,
    )
    app.jinja_env.filters["ci"] = _format_cell
    app.jinja_env.filters["when"] = _format_when
    app.jinja_env.filters["alpha"] = _format_alpha


def _describe_language(tag: str) -> str:
    """A language's name in the interface's language (``हिन्दी (देवनागरी)`` on a Hindi page)."""
    return describe_language(tag, ui_language())


_MODEL_NAME = re.compile(MODEL_NAME_PATTERN.strip("^$"))
_BENCHMARK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _bar(label: str, cell: Cell, series: int = 0) -> Bar:
    return Bar(label, cell.value, cell.ci_low, cell.ci_high, note=f"n={cell.n}", series=series)


def _history_plot(history: list[VersionedScore], title: str) -> Markup:
    """A model's score on each version of one benchmark, oldest first (a model page)."""
    bars = [
        _bar(
            f"v{h.version} {h.metric_label}" + (f" ({_('current')})" if h.current else ""),
            h.score,
            series=0 if h.current else 2,
        )
        for h in history
    ]
    return Markup(interval_bars(bars, title))


def _pair_plot(compared: ComparedBenchmark, names: tuple[str, str], title: str) -> Markup:
    """Two models' bars per language, one colour each (a comparison page)."""
    bars = [
        _bar(f"{_describe_language(tag)} · {names[i]}", cell, series=i)
        for tag, pair in compared.languages.items()
        for i, cell in enumerate(pair)
        if cell is not None
    ]
    return Markup(interval_bars(bars, title))


def _language_plot(cells: dict[str, Cell], title: str) -> Markup:
    """Bars of one benchmark's score per language (a model page)."""
    bars = [_bar(_describe_language(tag), cell) for tag, cell in sorted(cells.items())]
    return Markup(interval_bars(bars, title))


def _model_plot(rows: list[LanguageRow], title: str) -> Markup:
    """Bars of each model's score in one language (a language page), best first."""
    return Markup(interval_bars([_bar(row.model.name, row.score) for row in rows], title))


def _format_alpha(alpha: float | None) -> str:
    return _("undefined") if alpha is None else f"{alpha:.2f}"


def _format_cell(cell: Cell | None) -> str:
    if not cell:
        return "—"
    if cell.too_few or cell.ci_low is None or cell.ci_high is None:
        return f"{cell.value:.1f} ({_('too few items')})"
    return f"{cell.value:.1f} ± {(cell.ci_high - cell.ci_low) / 2:.1f}"


def _format_when(value: str | datetime | None) -> str:
    """ISO timestamps as ``2026-11-23 00:42:27 UTC``."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # SQLite drops the zone; Sabha stores UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _session() -> Any:
    return get_session()


def _page() -> int:
    try:
        return max(int(request.args.get("page", "1")), 1)
    except ValueError:
        abort(400, description="page must be a whole number, e.g. ?page=2")


@blueprint.get("/")
def index() -> str:
    session = _session()
    return render_template(
        "index.html",
        benchmarks=benchmark_summaries(session),
        languages=language_summaries(session),
    )


@blueprint.get("/favicon.ico")
def favicon() -> WerkzeugResponse:
    """Browsers that ask for /favicon.ico get the site's SVG icon."""
    return redirect(url_for("leaderboard.static", filename="favicon.svg"), 308)


@blueprint.get("/benchmarks/<name>")
def benchmark_page(name: str) -> str:
    page = _page()
    # Only the body is cached: the layout around it names who is signed in.
    title, body = cached_page("html", name, page, lambda: _benchmark_body(name, page))
    return render_template("cached.html", title=title, body=body)


def _benchmark_body(name: str, page: int) -> tuple[str, Markup]:
    board = leaderboard(_session(), name, page)
    return board.benchmark.title, Markup(render_template("_benchmark_body.html", board=board))


def _check_run_visible(job_id: int) -> None:
    """A submission's run is its submitter's (and admins') until it completes: 404 to others."""
    user = current_user()
    is_admin = user is not None and Role.ADMIN in current_roles()
    check_run_visible(_session(), job_id, user.id if user else None, is_admin)


@blueprint.get("/jobs/<dbid:job_id>")
def job_page(job_id: int) -> str:
    """A finished job's scores and provenance (``/runs/<id>`` of earlier releases redirects)."""
    _check_run_visible(job_id)
    session = _session()
    return render_template(
        "run.html",
        run=run_details(session, job_id),
        bundles=scoring_runs_of_job(session, job_id),
    )


def _benchmark_arg() -> str | None:
    name = request.args.get("benchmark")
    if name is not None and not _BENCHMARK_NAME.fullmatch(name):
        abort(400, description="benchmark must be a benchmark's name, e.g. ?benchmark=flores")
    return name


@blueprint.get("/languages/<tag>")
def language_page_view(tag: str) -> str:
    """The best models for one language, on every current benchmark that measures it
    (``?benchmark=NAME&page=N``: all of one benchmark's, a page at a time)."""
    benchmark, page = _benchmark_arg(), _page()

    def render() -> tuple[str, Markup]:
        found = language_page(_session(), tag, benchmark, page)
        return _describe_language(found.tag), Markup(
            render_template("_language_body.html", page=found, one=benchmark is not None)
        )

    title, body = cached_view("html-language", (tag, benchmark, page), render)
    return render_template("cached.html", title=title, body=body)


@blueprint.get("/models/<name>")
def model_page(name: str) -> str:
    """A model's ranks and scores on every current benchmark and language, with its
    model-index snippet."""
    site = request.url_root

    def render() -> tuple[str, Markup]:
        page = model_page_of(_session(), name)
        snippet = model_index_yaml(page, site)
        return name, Markup(render_template("_model_body.html", page=page, snippet=snippet))

    title, body = cached_view("html-model", (name, site), render)
    return render_template("cached.html", title=title, body=body)


@blueprint.get("/models/<first>/vs/<second>")
def compare_page(first: str, second: str) -> str:
    """Two models side by side on every benchmark both are ranked on, per language."""
    return render_template("compare.html", page=compare_models(_session(), first, second))


@blueprint.get("/compare")
def compare_form() -> WerkzeugResponse:
    """The model page's compare form: ``?a=NAME&b=NAME`` leads to ``/models/a/vs/b``."""
    first, second = request.args.get("a", "").strip(), request.args.get("b", "").strip()
    if not (_MODEL_NAME.fullmatch(first) and _MODEL_NAME.fullmatch(second)):
        abort(400, description="Give two model names: ?a=NAME&b=NAME, as leaderboards show them.")
    return redirect(url_for("leaderboard.compare_page", first=first, second=second))


@blueprint.get("/models/<name>/model-index.yaml")
def model_index_snippet(name: str) -> Response:
    """A model's scores as the ``model-index`` metadata of a Hugging Face model card."""
    page = model_page_of(_session(), name)
    return Response(
        model_index_yaml(page, request.url_root),
        mimetype="application/yaml",
        headers={"Content-Disposition": f'inline; filename="{name}-model-index.yaml"'},
    )


def _card_html(card_markdown: str) -> tuple[dict[str, Any], str]:
    """Split a data card into its YAML metadata and sanitised HTML body."""
    metadata: dict[str, Any] = {}
    body = card_markdown
    if card_markdown.startswith("---"):
        _, front, body = card_markdown.split("---", 2)
        metadata = yaml.safe_load(front) or {}
    html = markdown.markdown(body, extensions=["tables"])
    return metadata, nh3.clean(html, tags=_ALLOWED_TAGS)


@blueprint.get("/datasets/<name>")
def dataset_page_view(name: str) -> str:
    """A dataset's released versions: items per split and language, card, Parquet download."""
    return render_template("dataset.html", page=dataset_page(_session(), name))


@blueprint.get("/datasets/<name>/<version>.parquet")
def dataset_download(name: str, version: str) -> Response:
    """A released version's public items (public splits only) as its Parquet file."""
    if not re.fullmatch(r"[0-9a-f]{64}", version):
        abort(404)
    path = dataset_file(_session(), name, version)
    return send_file(
        path,
        mimetype="application/vnd.apache.parquet",
        as_attachment=True,
        download_name=f"{name}-{version[:12]}.parquet",
        etag=version,
        max_age=86400,
    )


@blueprint.get("/datasets/<name>/card")
def card_page(name: str) -> str:
    """The card of a dataset version (``?version=<content hash>``; default: the newest)."""
    card = data_card(_session(), name, request.args.get("version"))
    metadata, html = _card_html(card.card_markdown)
    return render_template("card.html", card=card, metadata=metadata, card_html=html)


@blueprint.get("/benchmarks/<name>/leaderboard.csv")
def csv_leaderboard(name: str) -> Response:
    """Every ranked model of a benchmark (all pages) as CSV."""
    return Response(
        leaderboard_csv(leaderboard(_session(), name, 1, per_page=100_000, tied_names=None)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}-leaderboard.csv"'},
    )


@blueprint.get("/benchmarks/<name>/leaderboard.parquet")
def parquet_leaderboard(name: str) -> Response:
    """Every ranked model of a benchmark (all pages) as Parquet, the same columns as the CSV."""
    return Response(
        leaderboard_parquet(leaderboard(_session(), name, 1, per_page=100_000, tied_names=None)),
        mimetype="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{name}-leaderboard.parquet"'},
    )
