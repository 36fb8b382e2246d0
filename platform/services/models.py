"""Register models: local folders (hashed outside any transaction), hub revisions, tiny ones."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.catalog import add_model, check_model_directory, directory_digest
from sabha.platform.db import session_scope
from sabha.platform.domain import Model
from sabha.platform.errors import SabhaError

__all__ = ["register_model", "make_tiny"]


def register_model(
    db: Engine,
    name: str,
    path: Path | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    smoke_test: bool = False,
    description: str | None = None,
) -> Model:
    """Register a model; a local folder is checked and hashed before the write begins."""
    if path is not None:
        path = path.resolve()
        check_model_directory(path)
        revision = directory_digest(path)
    with session_scope(db) as session:
        return add_model(session, name, path, repo_id, revision, smoke_test, description)


def make_tiny(
    db: Engine,
    models_dir: Path,
    name: str,
    seed: int,
    chat_template: bool,
    on_start: Callable[[], None] | None = None,
) -> Path:
    """Make a tiny random-weight model from the starter texts and register it.

    The folder is removed again if registering fails.
    """
    from sabha.workers.tiny_models import SIMPLE_CHAT_TEMPLATE, make_tiny_model

    with Session(db) as session:
        if session.exec(select(Model).where(Model.name == name)).first() is not None:
            raise SabhaError(
                f"A model named {name!r} is already registered.", "Choose another name."
            )
    destination = models_dir / name
    if destination.exists():
        raise SabhaError(
            f"{destination} already exists but is not registered.",
            f"Register it with `sabha models add {name} --path {destination}` "
            "or delete the folder.",
        )
    texts = []
    for path in starter_benchmark_paths():
        loaded = load_benchmark_file(path)
        texts.append(loaded.spec.prompt.template)
        texts.extend(loaded.spec.labels)
        for item in loaded.items:
            texts.extend(item.input.values())
            texts.extend(t for t in (item.reference, item.label) if t)
    if on_start:
        on_start()
    make_tiny_model(
        destination,
        texts,
        seed=seed,
        chat_template=SIMPLE_CHAT_TEMPLATE if chat_template else None,
    )
    try:
        register_model(
            db,
            name,
            path=destination,
            smoke_test=True,
            description="Random weights; for smoke tests only. Its scores mean nothing.",
        )
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return destination
