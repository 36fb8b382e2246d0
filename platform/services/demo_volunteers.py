"""The demo's volunteer part: two demo volunteers, a pool credential each, and a job for them.

``sabha demo`` serves its own platform on 127.0.0.1 and runs two volunteer
agents against it over HTTP, one per demo volunteer. The two pools have
different owners on purpose: a new pool's results count only once another
owner's pool ran the same shards and agreed (``verification``), and the demo
follows that rule like any other pool. Each volunteer's Sabha password is new
on every run (the demo prints it); the pool credential is kept in a file under
the data dir, in the format ``sabha worker run --credential-file`` reads, so
the pools keep their names and history across runs.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from sabha.platform.db import session_scope
from sabha.platform.domain import (
    Benchmark,
    Job,
    JobStatus,
    Model,
    Pool,
    PoolCredential,
    Role,
    RunStatus,
    RunVerdict,
    Shard,
    ShardRun,
    ShardStatus,
    User,
    id_of,
)
from sabha.platform.errors import AuthenticationFailed, NotFoundError

from .credentials import create_pool_credential, revoke_pool_credential, verify_client_secret
from .queue import create_job
from .users import create_user, get_user, grant_role, set_password

__all__ = [
    "DEMO_VOLUNTEERS",
    "DemoVolunteer",
    "VolunteerJobOutcome",
    "demo_volunteer_job",
    "set_up_demo_volunteers",
    "volunteer_job_outcome",
]

# (username, pool name): two owners, so each pool's results can verify the other's.
DEMO_VOLUNTEERS = (("demo-volunteer-1", "demo-pool-1"), ("demo-volunteer-2", "demo-pool-2"))
_CREDENTIAL_NAME = "demo pool"


@dataclass(frozen=True)
class DemoVolunteer:
    """A demo volunteer's Sabha sign-in and their pool's credential."""

    username: str
    password: str
    pool_name: str
    credential_file: Path
    client_id: str
    client_secret: str


def _read_credential(path: Path) -> tuple[str, str] | None:
    if not path.is_file():
        return None
    values = dict(
        line.split("=", 1) for line in path.read_text("utf-8").splitlines() if "=" in line
    )
    client_id, secret = values.get("client_id", ""), values.get("client_secret", "")
    return (client_id.strip(), secret.strip()) if client_id and secret else None


def _write_credential(path: Path, client_id: str, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"client_id={client_id}\nclient_secret={secret}\n")
    partial.replace(path)


def _volunteer(session: Session, username: str, password: str) -> User:
    try:
        user = get_user(session, username)
    except NotFoundError:  # the first demo run
        return create_user(
            session,
            username,
            password=password,
            display_name=username.replace("-", " ").capitalize(),
            roles=[Role.VOLUNTEER],
        )
    set_password(session, user, password)
    grant_role(session, user, Role.VOLUNTEER)
    return user


def _credential(session: Session, user: User, pool_name: str, path: Path) -> tuple[str, str]:
    """The credential kept in ``path`` while it still works; else a new one, bound to the pool."""
    kept = _read_credential(path)
    if kept is not None:
        try:
            credential = verify_client_secret(session, *kept)
        except AuthenticationFailed:
            credential = None
        if credential is not None and credential.owner_id == user.id:
            return kept
    for old in session.exec(
        select(PoolCredential).where(
            PoolCredential.owner_id == user.id,
            PoolCredential.name == _CREDENTIAL_NAME,
            col(PoolCredential.revoked_at).is_(None),
        )
    ):
        revoke_pool_credential(session, user, id_of(old))
    credential, secret = create_pool_credential(session, user, _CREDENTIAL_NAME)
    pool = session.exec(select(Pool).where(Pool.name == pool_name)).first()
    if pool is not None and pool.owner_id == user.id:  # the same pool, its new credential
        pool.credential_id = credential.id
        session.add(pool)
    session.flush()
    _write_credential(path, credential.client_id, secret)
    return credential.client_id, secret


def set_up_demo_volunteers(db: Engine, folder: Path) -> list[DemoVolunteer]:
    """Create (or reuse) the demo volunteers and their pool credentials.

    Args:
        db: Sabha's database.
        folder: Where the credential files are kept (one per volunteer, mode 0600).

    Returns:
        The volunteers, each with a new Sabha password.
    """
    volunteers = []
    for username, pool_name in DEMO_VOLUNTEERS:
        password = secrets.token_urlsafe(12)
        path = folder / f"{pool_name}.credential"
        with session_scope(db) as session:
            user = _volunteer(session, username, password)
            session.flush()
            client_id, secret = _credential(session, user, pool_name, path)
        volunteers.append(DemoVolunteer(username, password, pool_name, path, client_id, secret))
    return volunteers


def demo_volunteer_job(db: Engine, model: str, benchmark: str, shard_size: int) -> int:
    """The job of ``model`` on the latest ``benchmark`` (found or created): the volunteers' work."""
    with session_scope(db) as session:
        found = session.exec(select(Model).where(Model.name == model)).first()
        bench = session.exec(
            select(Benchmark).where(Benchmark.name == benchmark).order_by(col(Benchmark.id).desc())
        ).first()
        if found is None or bench is None:
            raise NotFoundError(
                f"The demo's volunteer job needs model {model!r} and benchmark {benchmark!r}.",
                "Run `sabha demo` again: it makes both.",
            )
        job, _ = create_job(session, found, bench, shard_size)
        return id_of(job)


@dataclass
class VolunteerJobOutcome:
    """Where the volunteers' job stands: shards counted, results waiting for a replica."""

    job_id: int
    status: JobStatus
    shards: int = 0
    accepted: int = 0
    waiting: int = 0  # shards with a result that waits for another owner's replica
    posted: Counter[str] = field(default_factory=Counter)  # results posted, per pool
    counted: Counter[str] = field(default_factory=Counter)  # results that count, per pool
    agreed: Counter[str] = field(default_factory=Counter)  # replicas that agreed, per pool

    @property
    def complete(self) -> bool:
        """Whether every shard counts and the job is scored."""
        return self.status == JobStatus.COMPLETED


def volunteer_job_outcome(db: Engine, job_id: int) -> VolunteerJobOutcome:
    """What became of the job's shards and of each pool's results."""
    with Session(db) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFoundError(f"There is no job {job_id}.", "Run `sabha demo` again.")
        shards = session.exec(select(Shard).where(Shard.job_id == job_id)).all()
        runs = session.exec(
            select(ShardRun, Pool.name)
            .join(Pool, col(Pool.id) == ShardRun.pool_id)
            .where(ShardRun.job_id == job_id)
        ).all()
    outcome = VolunteerJobOutcome(job_id, job.status, shards=len(shards))
    counted_runs = {shard.accepted_run_id for shard in shards}
    open_shards = {id_of(s) for s in shards if s.status != ShardStatus.COMPLETED}
    waiting = set()
    for run, pool in runs:
        if run.status not in (RunStatus.ACCEPTED, RunStatus.SUBMITTED, RunStatus.LATE):
            continue
        outcome.posted[pool] += 1
        if id_of(run) in counted_runs:
            outcome.counted[pool] += 1
        elif run.verdict == RunVerdict.AGREED:
            outcome.agreed[pool] += 1
        if run.shard_id in open_shards and run.verdict is None:
            waiting.add(run.shard_id)
    outcome.accepted = len(shards) - len(open_shards)
    outcome.waiting = len(waiting)
    return outcome
