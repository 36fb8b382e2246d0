"""Run evaluations on this machine: a local Ray runtime and an engine actor."""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from sabha.platform.errors import EngineError

from .engine import _require, start_engine_actor

__all__ = ["RayEngineClient", "ensure_ray", "shutdown_ray"]


def ensure_ray(address: str | None = None, quiet: bool = True) -> Any:
    """Start (or join) Ray, on loopback, without usage stats.

    Args:
        address: A cluster to join (``SABHA_RAY_ADDRESS``); None starts a local one.
        quiet: Keep the engines' own logs out of the terminal.
    """
    # Without this Ray binds to the machine's network address, not 127.0.0.1.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = _require("ray")
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "include_dashboard": False,
            "logging_level": logging.WARNING if quiet else logging.INFO,
            "log_to_driver": not quiet,
            "runtime_env": {"env_vars": {"VLLM_LOGGING_LEVEL": "WARNING" if quiet else "INFO"}},
        }
        if address:
            options["address"] = address
        else:
            # Also covers a process that imported ray before the variable was set.
            options["_node_ip_address"] = "127.0.0.1"
        ray.init(**options)
    return ray


def shutdown_ray() -> None:
    """Stop the local Ray runtime if this process started one."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


class RayEngineClient:
    """Calls a ``VLLMEngine`` actor synchronously; turns actor failures into ``EngineError``.

    Args:
        model_path: Model folder, or hub repository id, to load.
        seed: Engine seed.
        revision: Pinned commit, for a hub repository.
        memory_fraction: Share of memory vLLM may take (see ``engine_options``).
    """

    def __init__(
        self,
        model_path: str,
        seed: int = 0,
        revision: str | None = None,
        memory_fraction: float | None = None,
    ) -> None:
        self.model_path = model_path
        self.actor = start_engine_actor(
            model_path, seed, revision=revision, memory_fraction=memory_fraction
        )
        self._info: dict[str, Any] | None = None

    def _call(self, method: Any, *args: Any) -> Any:
        return self._get(method.remote(*args))

    def _get(self, ref: Any) -> Any:
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.ActorDiedError as exc:
            reason = _root_cause(exc)
            raise EngineError(
                f"vLLM could not load the model at {self.model_path}: {reason}",
                "Check that the folder is a complete Hugging Face model that vLLM supports "
                "(config.json, weights, tokenizer); run with --verbose for vLLM's own log.",
            ) from exc
        except ray.exceptions.RayTaskError as exc:
            raise EngineError(
                f"vLLM failed while generating with {self.model_path}: {_root_cause(exc)}",
                "Run with --verbose for vLLM's own log.",
            ) from exc

    def info(self) -> dict[str, Any]:
        """Provenance of the engine (host, Ray node, versions, device)."""
        if self._info is None:
            self._info = self._call(self.actor.info)
        return self._info

    def submit(self, requests: list[dict[str, Any]], decoding: dict[str, Any]) -> Any:
        """Queue a batch on the actor (see ``VLLMEngine.generate``); returns at once."""
        return self.actor.generate.remote(requests, decoding)

    def collect(self, handle: Any) -> list[dict[str, Any]]:
        """Wait for a submitted batch's answers."""
        return self._get(handle)

    def generate(
        self, requests: list[dict[str, Any]], decoding: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Generate answers for a batch and wait for them."""
        return self.collect(self.submit(requests, decoding))

    def close(self) -> None:
        """Stop the actor and free its memory."""
        import ray

        ray.kill(self.actor)


_ERROR_LINE = re.compile(r"^\s*(Value error, |[A-Za-z_][\w.]*(Error|Exception)\b:?\s*)")


def _root_cause(exc: BaseException) -> str:
    """The most telling line of a remote traceback, shortened."""
    cause = getattr(exc, "cause", None) or exc.__cause__
    text = str(cause or exc)
    lines = [line.strip() for line in text.splitlines() if _ERROR_LINE.match(line)]
    best = lines[-1] if lines else (text.strip().splitlines() or [type(exc).__name__])[-1]
    best = best.removeprefix("Value error, ").strip()
    return best if len(best) <= 300 else best[:297] + "..."
