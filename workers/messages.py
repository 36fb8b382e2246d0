"""What the agent tells its volunteer, in words: registered, leased, posted, waiting, verified.

One line per event, said as it happens (the CLI prints and flushes each).
"""

from __future__ import annotations

from sabha.platform.wire import PoolInfo, ShardLease, SubmitReceipt

__all__ = ["leased_line", "posted_line", "registered_lines", "waiting_line"]


def registered_lines(pool: PoolInfo) -> list[str]:
    """What registering said about the pool, and what a new pool should expect."""
    lines = [
        f"Registered pool {pool.name!r} (id {pool.id}; {pool.status}; {pool.agreements} "
        "result(s) verified by other volunteers so far)."
    ]
    if pool.verifications_needed:
        lines.append(
            "A new pool's results count once another volunteer's pool has run the same "
            f"shards and agreed: the next {pool.verifications_needed} verified result(s) "
            "make this pool proven, and then most of its results count at once."
        )
    return lines


def leased_line(lease: ShardLease) -> str:
    """A new lease: which shard of which job and benchmark, how many items, which model."""
    benchmark = f" ({lease.benchmark})" if lease.benchmark else ""
    replica = ", a replica verifying another pool's run" if lease.replica else ""
    return (
        f"Leased shard {lease.shard_index} of job {lease.job_id}{benchmark}: "
        f"{len(lease.requests)} items, model {lease.model.name}{replica}."
    )


def posted_line(run_id: int, receipt: SubmitReceipt, outputs: int | None = None) -> str:
    """What a posted result's receipt means, for the volunteer (``outputs``: how many it held)."""
    if receipt.verdict == "agreed":
        meaning = "it agreed with another volunteer's run of the same shard: verified" + (
            ", and it counts" if receipt.status == "accepted" else ""
        )
    elif receipt.verdict in ("disagreed", "withdrawn"):
        meaning = f"{receipt.verdict}: it does not count"
    else:
        meaning = {
            "accepted": "it counts now",
            "submitted": "it waits for another volunteer's pool to run the same shard; "
            "it counts once they agree",
            "late": "the shard was finished by another pool meanwhile; kept, not counted",
        }.get(receipt.status, receipt.status)
    again = " (posted before)" if receipt.duplicate else ""
    held = f" ({outputs} outputs)" if outputs is not None else ""
    return f"Posted run {run_id}{held}{again}: {meaning}."


def waiting_line(poll_seconds: float | None, leased_so_far: int) -> str:
    """What the agent says each time it runs out of work (once per wait, not per poll).

    ``poll_seconds`` None: the platform answers as soon as work arrives (long-poll).
    """
    again = (
        "the platform hands some over as soon as it arrives"
        if poll_seconds is None
        else f"asking again every {poll_seconds:g} s"
    )
    return (
        f"Waiting: no shard to lease now ({leased_so_far} leased so far, none in hand); "
        f"{again}. Ctrl-C stops."
    )
