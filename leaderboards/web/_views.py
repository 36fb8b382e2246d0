from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import markdown
import nh3
import yaml
from flask import Blueprint, Flask, Response, abort, jsonify, render_template, request
from sqlmodel import col, select

from sabha.platform.domain import Dataset, DatasetVersion
from sabha.platform.languages import describe_language, text_direction

from ..board import benchmark_summaries, leaderboard, run_details

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
    app.jinja_env.globals.update(describe_language=describe_language, text_direction=text_direction)
    app.jinja_env.filters["ci"] = _format_cell
    app.jinja_env.filters["when"] = _format_when


def _format_cell(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "—"
    return f"{cell['value']:.1f} ± {(cell['ci_high'] - cell['ci_low']) / 2:.1f}"


def _format_when(value: str | datetime | None) -> str:
    """ISO timestamps as ``2026-11-23 00:42:27 UTC``."""
    if not value:
        return "—"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:  # SQLite drops the zone; Sabha stores UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _session() -> Any:
    from sabha.platform.app import get_session

    return get_session()


@blueprint.get("/")
def index() -> str:
    return render_template("index.html", benchmarks=benchmark_summaries(_session()))


@blueprint.get("/benchmarks/<name>")
def benchmark_page(name: str) -> str:
    return render_template("benchmark.html", board=leaderboard(_session(), name))


@blueprint.get("/runs/<int:job_id>")
def run_page(job_id: int) -> str:
    return render_template("run.html", run=run_details(_session(), job_id))


def _card_html(card_markdown: str) -> tuple[dict[str, Any], str]:
    """Split a data card into its YAML metadata and sanitised HTML body."""
    metadata: dict[str, Any] = {}
    body = card_markdown
    if card_markdown.startswith("---"):
        _, front, body = card_markdown.split("---", 2)
        metadata = yaml.safe_load(front) or {}
    html = markdown.markdown(body, extensions=["tables"])
    return metadata, nh3.clean(html, tags=_ALLOWED_TAGS)


@blueprint.get("/datasets/<name>/card")
def card_page(name: str) -> str:
    """The card of a dataset version (``?version=<content hash>``; default: the newest)."""
    session = _session()
    dataset = session.exec(select(Dataset).where(Dataset.name == name)).first()
    if dataset is None:
        abort(404)
    query = select(DatasetVersion).where(DatasetVersion.dataset_id == dataset.id)
    if "version" in request.args:
        query = query.where(DatasetVersion.content_hash == request.args["version"])
    version = session.exec(query.order_by(col(DatasetVersion.id).desc())).first()
    if version is None or not version.card_markdown:
        abort(404)
    metadata, html = _card_html(version.card_markdown)
    return render_template(
        "card.html", dataset=dataset, version=version, metadata=metadata, card_html=html
    )


@blueprint.get("/api/benchmarks")
def api_benchmarks() -> Response:
    return jsonify(benchmarks=benchmark_summaries(_session()))


@blueprint.get("/api/benchmarks/<name>/leaderboard")
def api_leaderboard(name: str) -> Response:
    return jsonify(leaderboard(_session(), name))


@blueprint.get("/api/runs/<int:job_id>")
def api_run(job_id: int) -> Response:
    return jsonify(run_details(_session(), job_id))


@blueprint.get("/benchmarks/<name>/leaderboard.csv")
def csv_leaderboard(name: str) -> Response:
    board = leaderboard(_session(), name)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    metrics = board["columns"]["metrics"]
    breakdowns = board["columns"]["breakdowns"]
    primary = board["benchmark"]["primary_metric"]
    header = ["rank", "model", "smoke_test", "revision", "run"]
    for metric in metrics:
        header += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    for breakdown, groups in breakdowns.items():
        for group in groups:
            header += [
                f"{primary}[{breakdown}={group}]",
                f"{primary}[{breakdown}={group}]_ci_low",
                f"{primary}[{breakdown}={group}]_ci_high",
            ]
    writer.writerow(header)
    for row in board["rows"]:
        line = [
            row["rank"],
            row["model"]["name"],
            row["model"]["smoke_test"],
            row["model"]["revision"],
            row["job_id"],
        ]
        for metric in metrics:
            cell = row["scores"].get(metric)
            line += [cell["value"], cell["ci_low"], cell["ci_high"]] if cell else ["", "", ""]
        for breakdown, groups in breakdowns.items():
            for group in groups:
                cell = row["breakdowns"].get(breakdown, {}).get(group)
                line += [cell["value"], cell["ci_low"], cell["ci_high"]] if cell else ["", "", ""]
        writer.writerow(line)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}-leaderboard.csv"'},
    )
