"""Find and register benchmarks and models by name."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from sqlmodel import Session, col, select

from .domain import Benchmark, Job, Model, utcnow
from .errors import NotFoundError, SabhaError
from .wire import (
    HUB_REPO_ID_PATTERN,
    MODEL_NAME_PATTERN,
    HubModelSource,
    LocalModelSource,
    ModelSource,
)

__all__ = [
    "ModelNameTaken",
    "add_model",
    "check_model_directory",
    "check_model_unchanged",
    "definition_for_job",
    "directory_digest",
    "find_or_add_model",
    "get_benchmark",
    "get_model",
    "latest_benchmarks",
    "local_model_revision",
]


class ModelNameTaken(SabhaError):
    """Another model is registered under the name asked for."""


# One rule with submissions and leases (``wire.ModelSource``), so every row makes a lease.
_NAME = re.compile(MODEL_NAME_PATTERN)
_REPO_ID = re.compile(HUB_REPO_ID_PATTERN)
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def latest_benchmarks(session: Session) -> list[Benchmark]:
    """The current definition of every benchmark name, sorted by name."""
    return list(
        session.exec(
            select(Benchmark).where(col(Benchmark.is_current).is_(True)).order_by(Benchmark.name)
        )
    )


def get_benchmark(session: Session, name: str) -> Benchmark:
    """The current definition of the benchmark ``name``.

    Raises:
        NotFoundError: no such benchmark; the message lists the known ones.
    """
    benchmark = session.exec(
        select(Benchmark).where(Benchmark.name == name, col(Benchmark.is_current).is_(True))
    ).first()
    if benchmark is None:
        known = ", ".join(b.name for b in latest_benchmarks(session)) or "(none loaded)"
        raise NotFoundError(
            f"Unknown benchmark {name!r}. Known benchmarks: {known}.",
            "Load it with `sabha benchmarks load PATH`, or pick a known name.",
        )
    return benchmark


def definition_for_job(session: Session, job: Job) -> Benchmark:
    """The current definition that scores ``job`` (else the one that made it).

    A new wording or scoring identity of the same generation becomes current
    without re-running the job; that definition describes and scores it.
    """
    made_by = session.get(Benchmark, job.benchmark_id)
    assert made_by is not None  # a job references its definition by foreign key
    current = session.exec(
        select(Benchmark).where(
            Benchmark.name == made_by.name,
            col(Benchmark.is_current).is_(True),
            Benchmark.generation_hash == job.generation_hash,
        )
    ).first()
    return current or made_by


def get_model(session: Session, name: str) -> Model:
    """The registered model ``name``.

    Raises:
        NotFoundError: no such model; the message lists the known ones.
    """
    model = session.exec(select(Model).where(Model.name == name)).first()
    if model is None:
        known = ", ".join(m.name for m in session.exec(select(Model).order_by(Model.name))) or (
            "(none registered)"
        )
        raise NotFoundError(
            f"Unknown model {name!r}. Known models: {known}.",
            "Register it with `sabha models add NAME --path DIR` (or `--hub REPO --revision SHA`), "
            "or make a smoke-test model with `sabha models make-tiny NAME`.",
        )
    return model


def check_model_directory(path: Path) -> None:
    """Check that ``path`` looks like a Hugging Face model folder vLLM can load.

    Raises:
        SabhaError: naming the missing or broken file.
    """
    if not path.is_dir():
        raise SabhaError(f"Model folder {path} does not exist.", "Give the path of a model folder.")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SabhaError(
            f"{path} is not a Hugging Face model folder: config.json is missing.",
            "Point --path at the folder that holds config.json, the weights and the tokenizer.",
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SabhaError(f"{config_file} is not valid JSON ({exc}).", "Fix or replace it.") from exc
    if not isinstance(config, dict) or not config.get("architectures"):
        raise SabhaError(
            f"{config_file} has no 'architectures' field, so vLLM cannot tell which model it is.",
            "Save the model with transformers' save_pretrained, which writes it.",
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise SabhaError(
            f"{path} holds no weights (*.safetensors or *.bin).",
            "Copy the weight files into the folder.",
        )
    if not (path / "tokenizer.json").is_file() and not (path / "tokenizer.model").is_file():
        raise SabhaError(
            f"{path} holds no tokenizer (tokenizer.json or tokenizer.model).",
            "Save the tokenizer into the same folder with save_pretrained.",
        )


def check_model_unchanged(model: Model) -> None:
    """Check that a local model's folder still holds what was registered.

    Scores must trace back to the exact weights, so a folder whose content
    changed since ``sabha models add`` is refused. A hub model is pinned by
    its commit: there is nothing to check.

    Raises:
        SabhaError: the folder is gone, broken or changed.
    """
    source = model.as_source()
    if not isinstance(source, LocalModelSource):
        return
    path = Path(source.path)
    check_model_directory(path)
    if directory_digest(path) != model.revision:
        raise SabhaError(
            f"The files of model {model.name!r} in {path} changed since it was registered, "
            "so its scores could not be traced to its weights.",
            "Register the changed folder under a new name with `sabha models add NEW --path DIR`.",
        )


def local_model_revision(path: Path) -> str:
    """Check a local model folder and hash it: the revision it is registered at.

    Hashing a large folder takes a while: call this before a write transaction
    begins and pass the result to :func:`add_model` as ``revision``.

    Raises:
        SabhaError: the folder is missing or is not a model folder.
    """
    check_model_directory(path)
    return directory_digest(path)


def directory_digest(path: Path) -> str:
    """SHA-256 of a folder's files (names and contents): a local model's revision."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def add_model(
    session: Session,
    name: str,
    path: Path | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    smoke_test: bool = False,
    description: str | None = None,
) -> Model:
    """Register a model from a local folder or a hub repository at a pinned commit.

    Raises:
        SabhaError: bad name, both or neither source, unpinned revision, bad folder,
            or the name is taken.
    """
    if not _NAME.match(name):
        raise SabhaError(
            f"Model name {name!r} is not allowed.",
            "Use letters, digits, '.', '_' and '-' (at most 200 characters).",
        )
    if (path is None) == (repo_id is None):
        raise SabhaError(
            "A model needs exactly one source.",
            "Pass either --path DIR or --hub REPO --revision SHA.",
        )
    if _name_taken(session, name):
        raise ModelNameTaken(
            f"A model named {name!r} is already registered.", "Choose another name."
        )
    if path is not None:
        path = path.resolve()
        # Callers that hold a write transaction hash the folder first
        # (local_model_revision) and pass the digest as ``revision``.
        if revision:
            check_model_directory(path)
        else:
            revision = local_model_revision(path)
        model = Model(
            name=name,
            source="local",
            path=str(path),
            revision=revision,
            smoke_test=smoke_test,
            description=description,
        )
    else:
        if not _REPO_ID.match(str(repo_id)):
            raise SabhaError(
                f"Hub repository {repo_id!r} is not a hub id (OWNER/NAME, letters, digits, "
                "'.', '_' and '-').",
                "Pass --hub as it appears on the model's page, e.g. meta-llama/Llama-3.2-1B.",
            )
        if not revision or not _COMMIT.match(revision):
            raise SabhaError(
                f"Hub model {repo_id!r} needs --revision pinned to a full 40-character "
                "commit hash.",
                "Find the commit on the model's page (Files and versions) and pass it "
                "as --revision.",
            )
        model = Model(
            name=name,
            source="hub",
            repo_id=repo_id,
            revision=revision,
            smoke_test=smoke_test,
            description=description,
        )
    session.add(model)
    session.flush()
    return model


def _name_taken(session: Session, name: str) -> bool:
    return session.exec(select(Model).where(Model.name == name)).first() is not None


def find_or_add_model(session: Session, source: ModelSource, digest: str | None = None) -> Model:
    """The model registered from a submitted source, else the source registered now.

    A hub source is found by repository and commit; a local folder by its path
    and ``digest`` (:func:`local_model_revision`, computed before the write
    transaction). A new model is named ``source.name``, or else after the
    repository and commit (the folder and digest), with the time appended
    when another model has that name.

    Raises:
        ModelNameTaken: ``source.name`` belongs to another model.
        SabhaError: what :func:`add_model` refuses.
    """
    if isinstance(source, HubModelSource):
        query = select(Model).where(
            Model.source == "hub",
            Model.repo_id == source.repo_id,
            Model.revision == source.revision,
        )
    else:
        query = select(Model).where(
            Model.source == "local",
            Model.path == str(Path(source.path).resolve()),
            Model.revision == digest,
        )
    existing = session.exec(query).first()
    if existing is not None:
        return existing
    name = source.name or _name_of(source, digest)
    if _name_taken(session, name):
        if source.name:
            raise ModelNameTaken(
                f"The name {name!r} belongs to another model.",
                "Choose another name, or leave it out.",
            )
        name = f"{name[:190]}-{utcnow():%Y%m%d%H%M%S}"
    if isinstance(source, HubModelSource):
        return add_model(session, name, repo_id=source.repo_id, revision=source.revision)
    return add_model(session, name, path=Path(source.path), revision=digest)


def _name_of(source: ModelSource, digest: str | None) -> str:
    if isinstance(source, HubModelSource):
        base = source.repo_id.replace("/", "--")
        return f"{base[:180]}-{source.revision[:8]}"
    base = re.sub(r"[^A-Za-z0-9._-]", "-", Path(source.path).name).lstrip("._-") or "model"
    return f"{base[:180]}-{(digest or '')[:8]}"
