"""Schemathesis on the lease protocol's operations with a worker token: no 5xx.

At least 5,000 generated requests (positive and negative) on SQLite, as a
volunteer's or a cheater's agent would send them. The helpers are
``test_api_schema.py``'s; this test has a file of its own so that
``make test-fast`` (files spread over the cores) runs it beside the other
schema test instead of after it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from test_api_schema import MINIMUM_REQUESTS, POOL_PATHS, _fuzz_operations, _scale, _schema

pytestmark = pytest.mark.postgresql


def test_generated_pool_and_lease_requests_with_a_worker_token_never_fail_the_server(
    db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease protocol, as a volunteer's (or a cheater's) agent speaks it: no 5xx."""
    operations, _user_auth, pool_auth = _schema(db, tmp_path, monkeypatch)
    pool_operations = [o for o in operations if o.path.startswith(POOL_PATHS)]
    assert len(pool_operations) >= 5
    scale = _scale(str(db.url))
    examples = max(1, round(MINIMUM_REQUESTS * scale / (len(pool_operations) * 2 * 0.55)))
    sent = _fuzz_operations(pool_operations, [pool_auth], examples)
    print(f"schemathesis sent {sent} lease-protocol requests, {examples} per operation and mode")
    assert sent >= MINIMUM_REQUESTS * scale, f"only {sent} requests were generated"
