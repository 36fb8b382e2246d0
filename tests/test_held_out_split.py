"""A private held-out split is evaluated on the server only and reported only as an aggregate.

Its items go into server-only shards that volunteers' pools never lease; the
public scores leave them out, and they add one aggregate score per metric
that no page or API answer breaks down to an item.
"""

from __future__ import annotations

from pathlib import Path

from conftest import ScriptedEngine, run_with, write_benchmark
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from webtools import make_web_app

from sabha.annotation.release import release_dataset_version
from sabha.platform.benchmarks import CardText, DatasetContent, ItemSpec, load_benchmark_file
from sabha.platform.catalog import add_model
from sabha.platform.db import session_scope
from sabha.platform.domain import PoolKind, Score, ScoringRun, Shard
from sabha.platform.services.benchmarks import register_benchmark
from sabha.platform.services.pools import register_pool
from sabha.platform.services.queue import create_job, lease_next_shard, release_lease
from sabha.platform.services.scoring import HELD_OUT_BREAKDOWN

SECRET_QUESTION = "गुप्त प्रश्न: मूंग की बुवाई कब करें?"
SECRET_REFERENCE = "गुप्त उत्तर: जायद में मार्च के अंत तक।"
SECRET_ANSWER = "SECRET-MODEL-ANSWER"


def _items() -> list[ItemSpec]:
    public = [
        ItemSpec.model_validate(
            {
                "id": f"pub-{i}",
                "language": "hi-Deva" if i % 2 else "ur-Arab",
                "split": "test",
                "input": {"question": f"سوال {i}" if i % 2 == 0 else f"प्रश्न {i}"},
                "reference": f"जवाब {i}",
            }
        )
        for i in range(4)
    ]
    private = [
        ItemSpec.model_validate(
            {
                "id": f"held-{i}",
                "language": "hi-Deva",
                "split": "test",
                "input": {"question": f"{SECRET_QUESTION} {i}"},
                "reference": SECRET_REFERENCE,
            }
        ).model_copy(update={"split": "private"})  # as an annotated release makes them
        for i in range(2)
    ]
    return public + private


def _benchmark(db: Engine, tmp_path: Path) -> int:
    content = DatasetContent(
        name="kisan-held-out",
        title="Kisan held-out",
        license="CC-BY-4.0",
        task="generation",
        languages=["hi-Deva", "ur-Arab"],
        labels=[],
        attributes={},
        card=CardText(
            summary="Advisory questions.",
            collection_process="Annotated for a test.",
            intended_use="Tests.",
            limitations="Tiny.",
        ),
        items=_items(),
        source="annotation",
        input_fields=["question"],
    )
    with session_scope(db) as session:
        release_dataset_version(session, content, tmp_path / "artifacts")
    loaded = load_benchmark_file(
        write_benchmark(
            tmp_path / "b",
            [],
            name="kisan-held-out",
            dataset=f"kisan-held-out@{content.content_hash}",
            languages=["hi-Deva", "ur-Arab"],
        )
    )
    with session_scope(db) as session:
        benchmark, _ = register_benchmark(session, loaded, tmp_path / "artifacts")
        model = add_model(session, "m", repo_id="org/m", revision="a" * 40)
        job, _ = create_job(session, model, benchmark, shard_size=2)
        return job.id or 0


def test_held_out_items_are_leased_only_to_the_servers_own_pools(
    db: Engine, tmp_path: Path
) -> None:
    job_id = _benchmark(db, tmp_path)
    with Session(db) as session:
        shards = session.exec(select(Shard).where(Shard.job_id == job_id)).all()
    assert sorted((s.index, len(s.item_ids), s.server_only) for s in shards) == [
        (0, 2, False),
        (1, 2, False),
        (2, 2, True),
    ]
    volunteer = register_pool(db, "volunteer", kind=PoolKind.REMOTE)
    leases = [lease_next_shard(db, volunteer) for _ in range(3)]
    assert leases[2] is None  # the held-out shard is not offered to a volunteer
    for lease in leases[:2]:
        assert lease is not None
        assert SECRET_QUESTION not in lease.model_dump_json()
        release_lease(db, lease.run_id, lease.token)
    local = register_pool(db, "operator")
    held_out = [lease_next_shard(db, local) for _ in range(3)]
    assert [lease is not None for lease in held_out] == [True, True, True]
    assert any(SECRET_QUESTION in lease.model_dump_json() for lease in held_out if lease)


def test_held_out_items_are_scored_apart_and_shown_only_as_an_aggregate(
    db: Engine, tmp_path: Path
) -> None:
    job_id = _benchmark(db, tmp_path)
    run_with(db, [job_id], ScriptedEngine(answer=lambda request: SECRET_ANSWER))
    with Session(db) as session:
        run = session.exec(select(ScoringRun).where(ScoringRun.job_id == job_id)).one()
        scores = session.exec(select(Score).where(Score.scoring_run_id == run.id)).all()
    assert run.items == 4  # the public items only
    overall = {s.metric: s.n for s in scores if s.breakdown == "overall"}
    held = {s.metric: (s.group, s.n) for s in scores if s.breakdown == HELD_OUT_BREAKDOWN}
    assert overall == {"chrf++": 4, "bleu": 4}
    assert held == {"chrf++": ("private", 2), "bleu": ("private", 2)}
    language = {s.group: s.n for s in scores if s.breakdown == "language" and s.metric == "bleu"}
    assert language == {"hi-Deva": 2, "ur-Arab": 2}

    client = make_web_app(db, tmp_path).test_client()
    board = client.get("/api/v1/benchmarks/kisan-held-out/leaderboard")
    assert board.status_code == 200
    (row,) = board.get_json()["rows"]
    assert row["breakdowns"][HELD_OUT_BREAKDOWN]["private"]["n"] == 2
    pages = [
        board.get_data(as_text=True),
        client.get("/benchmarks/kisan-held-out").get_data(as_text=True),
        client.get(f"/jobs/{job_id}").get_data(as_text=True),
        client.get(f"/api/v1/jobs/{job_id}/results").get_data(as_text=True),
        client.get("/benchmarks/kisan-held-out/leaderboard.csv").get_data(as_text=True),
    ]
    for page in pages:
        assert SECRET_QUESTION not in page and SECRET_REFERENCE not in page
    samples = client.get(f"/api/v1/jobs/{job_id}/results").get_json()["samples"]
    assert samples and all(s["item"].startswith("pub-") for s in samples)
    assert "on the private held-out split" in pages[1]


def test_a_job_page_links_only_public_items_of_an_annotated_dataset_to_their_history(
    db: Engine, tmp_path: Path
) -> None:
    import re

    from sabha.platform.services.annotation import create_annotation_project

    job_id = _benchmark(db, tmp_path)
    run_with(db, [job_id], ScriptedEngine(answer=lambda request: SECRET_ANSWER))
    create_annotation_project(db, "kisan-held-out", "hi-Deva", "qa")  # annotated through Sabha
    client = make_web_app(db, tmp_path).test_client()
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    links = re.findall(r'href="(/datasets/kisan-held-out/items/([^"/]+)/history)"', page)
    assert links and all(key.startswith("pub-") for _link, key in links)
    samples = client.get(f"/api/v1/jobs/{job_id}/results").get_json()["samples"]
    assert [s["history_url"] for s in samples] == [link for link, _key in links]
    assert 'href="/datasets/kisan-held-out/items"' in client.get(
        "/datasets/kisan-held-out"
    ).get_data(as_text=True)
    for key in ("held-0", "held-1", "hi-Deva.held-0"):
        assert client.get(f"/datasets/kisan-held-out/items/{key}/history").status_code == 404
    listing = client.get("/datasets/kisan-held-out/items").get_data(as_text=True)
    assert re.search(r"held-\d", listing) is None and SECRET_QUESTION not in listing
