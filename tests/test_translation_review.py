"""A catalog's translations reviewed through Sabha's own annotation workflow, and back.

``sabha translations export`` makes post_edit rows; they are uploaded into an
annotation project; two people post-edit, a reviewer accepts, the dataset is
released; ``sabha translations import`` writes the released Parquet back into
the catalog. Annotations are stored as the sync stores what Label Studio holds
(``annotationtools``): Label Studio itself is not the subject here. A reviewed
translation that breaks its string, and a file that is not a release, change
nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from annotationtools import annotate, person
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.annotation.gates import ReleaseGates
from sabha.annotation.votes import annotation_version
from sabha.leaderboards.board._datasets import card_agreement
from sabha.platform.cli import cli
from sabha.platform.db import session_scope
from sabha.platform.domain import Annotation, SourceItem
from sabha.platform.services.annotation import (
    create_annotation_project,
    release_annotated_dataset,
    review_annotation,
    upload_source_items,
)
from sabha.platform.web.catalogs import import_reviewed, read_catalog, review_rows
from sabha.platform.web.i18n import TRANSLATIONS

EDITED = {
    "Benchmarks": "बेंचमार्क सूची",
    "Sign in": "लॉग इन करें",
    "%(n)s judgements": "%(n)s निर्णय",
}


@pytest.fixture()
def catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped catalogs, so a test may write into it."""
    folder = tmp_path / "translations"
    shutil.copytree(TRANSLATIONS, folder)
    monkeypatch.setattr("sabha.platform.web.catalogs.TRANSLATIONS", folder)
    return folder


def _post_edit(text: str) -> list[dict[str, Any]]:
    return [
        {"from_name": "translation", "to_name": "source", "type": "textarea",
         "value": {"text": [text]}},
    ]  # fmt: skip


def _released_rows(db: Engine, tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    """Upload ``rows`` as a Hindi post_edit project, post-edit each as EDITED says (two
    people), accept every edit, release; the released Parquet file."""
    project = create_annotation_project(db, "sabha-ui-hi", "hi-Deva", "post_edit")
    upload = tmp_path / "ui-hi.jsonl"
    upload.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    upload_source_items(db, project.id or 0, upload)
    with session_scope(db) as session:
        items = session.exec(select(SourceItem).where(SourceItem.project_id == project.id)).all()
        for n, item in enumerate(items):
            item.labelstudio_task_id = 500 + n
            session.add(item)
        tasks = {item.key: item.labelstudio_task_id for item in items}
    sources = {row["id"]: row["source"] for row in rows}
    people = [person(db, name, ("annotator",)) for name in ("lekhak", "sampadak")]
    reviewer = person(db, "samikshak", ("reviewer",))
    annotation_id = 9000
    for key, task in tasks.items():
        for who in people:
            annotation_id += 1
            annotate(db, annotation_id, task or 0, who.id or 0, _post_edit(EDITED[sources[key]]))
    with Session(db) as session:
        stored = session.exec(select(Annotation)).all()
    for annotation in stored:
        review_annotation(
            db,
            annotation.labelstudio_annotation_id,
            reviewer,
            "accepted",
            version=annotation_version(annotation.result),
        )
    gates = ReleaseGates(min_annotations_per_item=2, min_alpha=None, min_acceptance=0.8)
    release_annotated_dataset(db, "sabha-ui-hi", tmp_path / "artifacts", gates=gates)
    return next((tmp_path / "artifacts").glob("datasets/sabha-ui-hi/*.parquet"))


def test_reviewed_translations_go_from_a_release_back_into_the_catalog(
    db: Engine, tmp_path: Path, catalogs: Path
) -> None:
    runner = CliRunner()
    exported = runner.invoke(cli, ["translations", "export", "hi"])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in exported.output.splitlines()]
    assert len({r["id"] for r in rows}) == len(rows)  # one row per string and plural form
    chosen = [r for r in rows if r["source"] in EDITED]
    assert len(chosen) == len(EDITED)
    assert not {r["draft"] for r in chosen} & set(EDITED.values())  # each edit changes something
    release = _released_rows(db, tmp_path, chosen)
    assert len(pq.read_table(release).to_pylist()) == len(EDITED)

    imported = runner.invoke(cli, ["translations", "import", "hi", str(release)])
    assert imported.exit_code == 0, imported.output
    assert f"{len(EDITED)} translations changed" in imported.output
    catalog = read_catalog("hi", catalogs)
    for english, reviewed in EDITED.items():
        assert catalog[english].string == reviewed
    # The rest of the catalog is as it was, and importing again changes nothing.
    assert read_catalog("hi", catalogs)["Rank"].string == read_catalog("hi")["Rank"].string
    again = runner.invoke(cli, ["translations", "import", "hi", str(release)])
    assert f"0 translations changed, {len(EDITED)} already as reviewed" in again.output


def _release_file(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "release.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_a_reviewed_translation_that_breaks_its_string_changes_nothing(
    tmp_path: Path, catalogs: Path
) -> None:
    ids = {row["source"]: row["id"] for row in review_rows("hi", catalogs)}
    before = (catalogs / "hi.po").read_bytes()
    hostile = [
        {"id": f"hi-Deva.{ids['Benchmarks']}", "reference": "ठीक अनुवाद"},
        {"id": f"hi-Deva.{ids['%(n)s judgements']}", "reference": "निर्णय"},  # number lost
        {"id": f"hi-Deva.{ids['Sign in']}", "reference": '<img src=x onerror="alert(1)">'},
        {"id": f"hi-Deva.{ids['Rank']}", "reference": "100% पक्का"},  # a stray %
        {"id": "hi-Deva.ui-0000000000000000", "reference": "कोई नहीं"},  # a removed string
    ]
    outcome = import_reviewed("hi", hostile, catalogs)
    problems = "\n".join(outcome.problems)
    assert "placeholders differ" in problems and "markup" in problems
    assert "does not format" in problems
    assert outcome.unknown == ["hi-Deva.ui-0000000000000000"]
    assert (catalogs / "hi.po").read_bytes() == before

    result = CliRunner().invoke(
        cli, ["translations", "import", "hi", str(_release_file(tmp_path, hostile))]
    )
    assert result.exit_code == 1 and "Nothing written: 3 reviewed translations" in result.output
    assert (catalogs / "hi.po").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["translations", "export", "en"], "'en' is not a translated interface language"),
        (["translations", "export", "../hi"], "use one of hi, sw, ta"),
        (["translations", "import", "xx", "missing.parquet"], "does not exist"),
    ],
)
def test_bad_arguments_name_the_fix(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and message in result.output


def test_a_file_that_is_not_a_release_is_refused(tmp_path: Path, catalogs: Path) -> None:
    before = (catalogs / "hi.po").read_bytes()
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("id,reference\nui-1,x\n")
    no_reference = _release_file(tmp_path, [{"id": "ui-1", "text": "x"}])
    for path in (not_parquet, no_reference):
        result = CliRunner().invoke(cli, ["translations", "import", "hi", str(path)])
        assert result.exit_code == 2 and "id and reference columns" in result.output
    assert (catalogs / "hi.po").read_bytes() == before


def test_status_counts_what_each_catalog_lacks(catalogs: Path) -> None:
    result = CliRunner().invoke(cli, ["translations", "status"])
    assert result.exit_code == 0
    for autonym in ("हिन्दी (hi)", "Kiswahili (sw)", "தமிழ் (ta)"):
        assert autonym in result.output


def test_the_reviewed_release_shows_its_agreement_per_language(
    db: Engine, tmp_path: Path, catalogs: Path
) -> None:
    """The dataset page shows the agreement table of an annotated release's card, per
    language and field, on the page and in its JSON (a release without one shows none)."""
    from webtools import make_web_app

    rows = [r for r in review_rows("hi", catalogs) if r["source"] in EDITED]
    _released_rows(db, tmp_path, rows)
    client = make_web_app(db, tmp_path).test_client()
    data = client.get("/api/v1/datasets/sabha-ui-hi").get_json()
    agreement, overall = data["versions"][0]["agreement"]
    assert overall["language"] == "overall"
    assert agreement["language"] == "hi-Deva" and agreement["field"] == "translation"
    assert agreement["statistic"] == "chrF (pairwise)" and agreement["items"] == len(EDITED)
    assert agreement["value"] == pytest.approx(100.0, abs=0.01)  # both people wrote the same
    page = client.get("/datasets/sabha-ui-hi").get_data(as_text=True)
    assert "How far annotators agreed, per language" in page and "100.000" in page
    assert "All languages" in page
    assert card_agreement("no table here") == []
    undefined = card_agreement(
        "| language | field | statistic | agreement | items |  |\n|---|---|---|---|---|---|\n"
        "| `ta-Taml` | safety | Krippendorff alpha | — | 1 | too few |\n\nafter"
    )
    assert [(a.language, a.value, a.items) for a in undefined] == [("ta-Taml", None, 1)]
