"""What the agent tells its volunteer, in words: registered, posted, waiting, verified."""

from __future__ import annotations

from sabha.platform.wire import PoolInfo, SubmitReceipt

__all__ = ["posted_line", "registered_lines", "waiting_line"]


def registered_lines(pool: PoolInfo) -> list[str]:
    """What registering said about the pool, and what a new pool should expect."""
    lines = [
        f"Registered pool {pool.name!r} ({pool.status}; {pool.agreements} result(s) "
        "verified by other volunteers so far)."
    ]
    if pool.verifications_needed:
        lines.append(
            "A new pool's results count once another volunteer's pool has run the same "
            f"shards and agreed: the next {pool.verifications_needed} verified result(s) "
            "make this pool proven, and then most of its results count at once."
        )
    return lines


def posted_line(run_id: int, receipt: SubmitReceipt) -> str:
    """What a posted result's receipt means, for the volunteer."""
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
    return f"Posted run {run_id}{again}: {meaning}."


def waiting_line(poll_seconds: float, leased_so_far: int) -> str:
    """What the agent says each time it runs out of work (once per wait, not per poll)."""
    return (
        f"Waiting: no shard to lease now ({leased_so_far} leased so far, none in hand); "
        f"asking again every {poll_seconds:g} s. Ctrl-C stops."
    )
