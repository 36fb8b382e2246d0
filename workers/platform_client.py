"""How an agent talks to the platform: the ``PlatformClient`` interface and its HTTPS client.

The lease protocol (``/api/v1``, every call with a ``worker``-scoped bearer
token from the OAuth2 client-credentials grant at ``/oauth/token``):

========================================  ==================  ====================
``POST /api/v1/pools``                    ``PoolRegistration``  ``PoolInfo``
``POST /api/v1/leases``                   (nothing)           ``ShardLease``, or 204: no work
``POST /api/v1/leases/batch`` (1.2)       ``LeaseBatchRequest``  ``LeaseBatch``
``POST /api/v1/leases/<run>/heartbeat``   ``LeaseToken``      ``LeaseRenewed``
``POST /api/v1/leases/<run>/result``      ``ShardResult``     ``SubmitReceipt``
``POST /api/v1/leases/<run>/release``     ``LeaseRelease``    ``LeaseReceipt``
``POST /api/v1/results/batch``            ``ResultBatch``     ``ResultBatchReceipt`` (1.2)
========================================  ==================  ====================

Errors are problem+json (RFC 9457). Connection failures, 429 and 5xx answers
are retried with exponential backoff (``tenacity``) for up to
``retry_seconds``; then ``PlatformUnavailable`` is raised and the agent keeps
its finished results in the spool. An expired access token is renewed once.
A platform older than protocol 1.2 answers the batch lease with 404: the
client then says so (``lease_batch`` returns None) and the agent leases one
shard a call. This module imports neither Flask nor the platform's services.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from sabha.platform.errors import SabhaError
from sabha.platform.wire import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    LeaseBatch,
    LeaseBatchRequest,
    LeaseReceipt,
    LeaseRelease,
    LeaseRenewed,
    LeaseToken,
    PoolInfo,
    PoolRegistration,
    ResultBatch,
    ResultBatchReceipt,
    ResultOutcome,
    ShardLease,
    ShardResult,
    SubmitReceipt,
)

__all__ = [
    "BatchLeasing",
    "HttpPlatformClient",
    "LeaseGone",
    "PlatformClient",
    "PlatformRefused",
    "PlatformUnavailable",
]


class PlatformUnavailable(SabhaError):
    """The platform did not answer (network, restart, overload) within the retry time."""


class PlatformRefused(SabhaError):
    """The platform refused a request for good (4xx); retrying it cannot help.

    Attributes:
        status: The HTTP status.
    """

    def __init__(self, message: str, hint: str = "", status: int = 400) -> None:
        super().__init__(message, hint)
        self.status = status


class LeaseGone(PlatformRefused):
    """The lease is no longer this pool's (expired, released, or never its own)."""


class PlatformClient(Protocol):
    """What the agent needs from the platform."""

    def register(self, registration: PoolRegistration) -> PoolInfo: ...

    def lease(self) -> ShardLease | None: ...

    def heartbeat(self, run_id: int, token: str) -> datetime: ...

    def submit(self, result: ShardResult) -> SubmitReceipt: ...

    def submit_batch(self, results: Sequence[ShardResult]) -> list[ResultOutcome] | None:
        """Post several results at once; None: this platform takes one result per post."""
        ...

    def release(self, run_id: int, token: str, reason: str | None = None) -> None: ...


@runtime_checkable
class BatchLeasing(Protocol):
    """A platform client that leases several shards a call and may wait for work (1.2)."""

    def lease_batch(self, max_shards: int, wait_seconds: float) -> LeaseBatch | None:
        """Up to ``max_shards`` leases, waiting up to ``wait_seconds`` for work.

        None: the platform has no batch leasing (older than protocol 1.2).
        """
        ...


class _Retryable(Exception):
    """A failure worth retrying (connection error, 429, 5xx)."""


class HttpPlatformClient:
    """The lease protocol over HTTP(S) with ``requests``, retried with ``tenacity``.

    Args:
        server: The platform's base URL, e.g. ``https://sabha.example.org``.
        client_id: The pool credential's client id.
        client_secret: Its secret.
        timeout: Seconds to wait for one answer.
        retry_seconds: How long to keep retrying a call the platform does not answer.
    """

    def __init__(
        self,
        server: str,
        client_id: str,
        client_secret: str,
        timeout: float = 60.0,
        retry_seconds: float = 120.0,
    ) -> None:
        self.server = server.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        self._local = threading.local()  # one requests.Session per thread
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._batches = True  # until the platform answers that it has no batch endpoint

    # -- the protocol ----------------------------------------------------------------

    def register(self, registration: PoolRegistration) -> PoolInfo:
        """Register (or update) this credential's pool."""
        answer = self._call("POST", "/api/v1/pools", registration.model_dump(mode="json"))
        return _read(PoolInfo, answer)

    def lease(self) -> ShardLease | None:
        """Lease the next shard this pool may run, or None when there is no work."""
        answer = self._call("POST", "/api/v1/leases", None)
        return None if answer is None else _read(ShardLease, answer)

    def lease_batch(self, max_shards: int, wait_seconds: float) -> LeaseBatch | None:
        """Lease up to ``max_shards`` shards, the platform holding the call up to
        ``wait_seconds`` while none is queued (long-poll).

        The answer may hold fewer shards (the platform's ``SABHA_LEASE_MAX_SHARDS``),
        none with ``retry_after`` (the platform had no room to hold the call), or
        none after the wait. The HTTP timeout covers the wait, so Ctrl-C (which
        interrupts the call) is the way to end one early.

        Returns:
            The batch, or None when the platform has no batch leasing (404: a
            platform older than protocol 1.2); then use ``lease``.
        """
        body = LeaseBatchRequest(max_shards=max_shards, wait_seconds=wait_seconds)
        try:
            answer = self._call(
                "POST",
                "/api/v1/leases/batch",
                body.model_dump(mode="json", exclude_none=True),
                timeout=self.timeout + wait_seconds,
            )
        except PlatformRefused as exc:
            if exc.status == 404:
                return None
            raise
        return _read(LeaseBatch, answer)

    def heartbeat(self, run_id: int, token: str) -> datetime:
        """Extend a lease; ``LeaseGone`` when it is no longer held."""
        body = LeaseToken(token=token).model_dump(mode="json")
        answer = self._call("POST", f"/api/v1/leases/{run_id}/heartbeat", body)
        return _read(LeaseRenewed, answer).expires_at

    def submit(self, result: ShardResult) -> SubmitReceipt:
        """Post a shard's results (idempotent)."""
        body = result.model_dump(mode="json")
        answer = self._call("POST", f"/api/v1/leases/{result.run_id}/result", body)
        return _read(SubmitReceipt, answer)

    def submit_batch(self, results: Sequence[ShardResult]) -> list[ResultOutcome] | None:
        """Post several shards' results in one call (protocol 1.2; idempotent).

        Returns:
            One outcome per result, in their order; None when the platform is
            older and has no batch endpoint (404; remembered: post one by one).

        Raises:
            PlatformRefused: the batch was refused whole (too many results, too
                large, malformed): nothing of it was stored.
            PlatformUnavailable: no answer within the retry time.
        """
        if not self._batches:
            return None
        body = ResultBatch(results=list(results)).model_dump(mode="json")
        try:
            answer = self._call("POST", "/api/v1/results/batch", body)
        except PlatformRefused as exc:
            if exc.status != 404:
                raise
            self._batches = False
            return None
        outcomes = _read(ResultBatchReceipt, answer).outcomes
        if [o.run_id for o in outcomes] != [r.run_id for r in results]:
            raise PlatformRefused(
                "The platform answered a batch of results with outcomes of other runs.",
                "Report this to the platform's operator; the results stay in the spool.",
                502,
            )
        return outcomes

    def release(self, run_id: int, token: str, reason: str | None = None) -> None:
        """Hand a lease back so the shard is leased again at once."""
        body = LeaseRelease(token=token, reason=reason).model_dump(mode="json")
        _read(
            LeaseReceipt,
            self._call("POST", f"/api/v1/leases/{run_id}/release", body) or {"released": True},
        )

    # -- plumbing --------------------------------------------------------------------

    def _session(self) -> Any:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = "sabha-worker"
            session.headers[PROTOCOL_HEADER] = PROTOCOL_VERSION
        return session

    def _access_token(self, renew: bool = False) -> str:
        with self._token_lock:
            if self._token is None or renew:
                answer = self._retrying(self._fetch_token)
                self._token = str(answer["access_token"])
            return self._token

    def _fetch_token(self) -> dict[str, Any]:
        import requests

        try:
            response = self._session().post(
                f"{self.server}/oauth/token",
                data={"grant_type": "client_credentials", "scope": "worker"},
                auth=(self.client_id, self.client_secret),
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise _Retryable(str(exc)) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise PlatformRefused(
                f"The platform refused the pool credential {self.client_id!r} "
                f"({response.status_code}: {_oauth_error(response)}).",
                "Check SABHA_POOL_CLIENT_ID and SABHA_POOL_CLIENT_SECRET (or the credential "
                "file); a revoked credential needs a new one (`sabha credentials create`).",
                response.status_code,
            )
        answer: dict[str, Any] = response.json()
        return answer

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None = None
    ) -> Any:
        token = self._access_token()
        seconds = timeout or self.timeout
        try:
            return self._retrying(lambda: self._send(method, path, body, token, seconds))
        except _Unauthorized:
            token = self._access_token(renew=True)  # expired or revoked: one new token
            try:
                return self._retrying(lambda: self._send(method, path, body, token, seconds))
            except _Unauthorized as exc:
                raise PlatformRefused(
                    f"The platform refused this pool's access token: {exc}",
                    "Check that the pool credential is still valid.",
                    401,
                ) from exc

    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, token: str, timeout: float
    ) -> Any:
        import requests

        try:
            response = self._session().request(
                method,
                f"{self.server}{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
            )
        except requests.RequestException as exc:
            raise _Retryable(str(exc)) from exc
        status = response.status_code
        if status == 204:
            return None
        if 200 <= status < 300:
            return response.json()
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}")
        detail = _problem_detail(response)
        if status == 401:
            raise _Unauthorized(detail)
        one_lease = path.startswith("/api/v1/leases/") and path != "/api/v1/leases/batch"
        if one_lease and status in (403, 404, 409):
            raise LeaseGone(f"The lease is gone: {detail}", "Lease another shard.", status)
        raise PlatformRefused(
            f"The platform refused {method} {path}: {detail}", _problem_fix(response), status
        )

    def _retrying(self, call: Any) -> Any:
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_after_delay,
            wait_random_exponential,
        )

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Retryable),
                wait=wait_random_exponential(multiplier=0.5, max=30),
                stop=stop_after_delay(self.retry_seconds),
            ):
                with attempt:
                    return call()
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            raise PlatformUnavailable(
                f"The platform at {self.server} did not answer for {self.retry_seconds:.0f} s "
                f"({cause}).",
                "Finished results stay in the spool and are posted when it answers again.",
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover


M = TypeVar("M", bound=BaseModel)


def _read(model: type[M], answer: Any) -> M:
    """The platform's answer as ``model``, leaving out fields this agent does not know.

    A platform one minor protocol version ahead may send optional fields an
    agent can ignore (see ``wire.PROTOCOL_VERSION``); what the agent knows is
    still checked strictly.
    """
    return model.model_validate(_known([model], answer))


def _known(models: Sequence[type[BaseModel]], data: Any) -> Any:
    """``data`` with only the fields one of ``models`` knows (a union: any member's)."""
    if not isinstance(data, dict):
        return data
    known: dict[str, Any] = {}
    for model in models:
        for name, field in model.model_fields.items():
            if name not in data or name in known:
                continue
            inner = _models_in(field.annotation)
            value = data[name]
            if inner and isinstance(value, list):
                value = [_known(inner, v) for v in value]
            elif inner:
                value = _known(inner, value)
            known[name] = value
    return known


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside ``annotation`` (``M``, ``list[M]``, ``M | N | None``)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in typing.get_args(annotation) for found in _models_in(arg)]


class _Unauthorized(Exception):
    """HTTP 401: the access token expired or was revoked."""


def _problem_detail(response: Any) -> str:
    try:
        problem = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(problem, dict):
        parts = [str(problem.get(k)) for k in ("title", "detail") if problem.get(k)]
        if problem.get("errors"):
            parts.append(str(problem["errors"]))
        return " ".join(parts) or f"HTTP {response.status_code}"
    return f"HTTP {response.status_code}"


def _problem_fix(response: Any) -> str:
    """The ``fix`` a problem document gives, if any."""
    try:
        problem = response.json()
    except ValueError:
        return ""
    return str(problem.get("fix") or "") if isinstance(problem, dict) else ""


def _oauth_error(response: Any) -> str:
    try:
        return str(response.json().get("error", response.status_code))
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
