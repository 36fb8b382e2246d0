"""The agent's GPU ledger, alone: placement per node and which idle engines make room."""

from __future__ import annotations

import pytest

from sabha.workers.gpus import GpuLedger, HeldGpus


def test_an_engine_goes_to_the_fullest_node_that_fits() -> None:
    ledger = GpuLedger([8, 4])
    assert ledger.place(2) == 1  # the smaller node: the big gap stays for a big engine
    assert ledger.free == [8, 2]
    assert ledger.place(4) == 0 and ledger.free == [4, 2]
    assert ledger.place(8) is None  # no node has 8 free: nothing reserved
    assert ledger.free == [4, 2] and ledger.largest_node == 8


def test_released_gpus_are_free_again_and_never_more_than_the_node_has() -> None:
    ledger = GpuLedger([2])
    node = ledger.place(2)
    assert node == 0 and not ledger.fits_now(1)
    ledger.release(0, 2)
    assert ledger.fits_now(2)
    with pytest.raises(ValueError, match="would have 3 free GPUs of 2"):
        ledger.release(0, 1)


def test_the_fewest_least_recently_used_idle_engines_make_room() -> None:
    ledger = GpuLedger([4, 4])
    assert [ledger.place(1) for _ in range(8)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert ledger.free == [0, 0]
    idle = [
        HeldGpus(slot=0, node=0, gpus=1, last_used=5.0),
        HeldGpus(slot=1, node=0, gpus=1, last_used=1.0),
        HeldGpus(slot=2, node=1, gpus=2, last_used=9.0),
        HeldGpus(slot=3, node=0, gpus=1, last_used=3.0),
    ]
    # Two GPUs: one 2-GPU engine on node 1 beats two engines on node 0.
    assert ledger.victims(idle, 2) == [idle[2]]
    # Three GPUs: only node 0 can make room, oldest first.
    assert ledger.victims(idle, 3) == [idle[1], idle[3], idle[0]]
    assert ledger.victims(idle, 4) is None  # busy engines cannot be closed
    assert ledger.victims([], 1) is None


def test_no_victims_are_needed_when_the_gpus_are_free() -> None:
    assert GpuLedger([2]).victims([HeldGpus(0, 0, 1, 0.0)], 2) == []
