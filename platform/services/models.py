"""Make tiny random-weight models for smoke tests and register them.

Other models are registered with ``catalog.add_model`` (a local folder hashed
first with ``catalog.local_model_revision``, outside the write transaction).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from sabha.platform.benchmarks import load_benchmark_file, starter_benchmark_paths
from sabha.platform.catalog import add_model, local_model_revision
from sabha.platform.db import session_scope
from sabha.platform.domain import Model
from sabha.platform.errors import SabhaError

__all__ = ["make_tiny"]


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
        revision = local_model_revision(destination.resolve())  # before the write begins
        with session_scope(db) as session:
            add_model(
                session,
                name,
                path=destination,
                revision=revision,
                smoke_test=True,
                description="Random weights; for smoke tests only. Its scores mean nothing.",
            )
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return destination
