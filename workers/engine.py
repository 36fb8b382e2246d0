"""A vLLM engine as a long-lived Ray actor: one per model (later: one per GPU).

Model loading dominates the cost of a shard, so the engine stays alive across
batches and benchmarks; the caller's loop, not Ray, decides retries.
"""

from __future__ import annotations

import platform
import socket
from typing import Any

__all__ = ["VLLMEngine", "engine_options", "start_engine_actor"]

# The CPU build of vLLM reserves this fraction of memory for its KV cache; its
# default (0.92) assumes a dedicated GPU and fails on a shared CPU machine.
CPU_MEMORY_FRACTION = 0.15


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"Sabha's inference needs {module!r}, which is not installed. "
            "Install the CPU extra (`pip install -e '.[cpu]'`, which `make setup` does) "
            "or, on a CUDA machine, the GPU extra (`pip install -e '.[gpu]'`)."
        ) from exc


def engine_options(
    model_path: str,
    seed: int = 0,
    max_model_len: int = 2048,
    revision: str | None = None,
    memory_fraction: float | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``vllm.LLM`` that suit this machine.

    Args:
        model_path: Local model folder or hub repository id.
        seed: Engine seed.
        max_model_len: Longest prompt plus answer, in tokens.
        revision: Pinned commit of a hub repository (weights and tokenizer).
        memory_fraction: Share of GPU memory (of CPU memory, on the CPU build)
            vLLM may take; None: vLLM's default on GPU, ``CPU_MEMORY_FRACTION`` on CPU.
    """
    options: dict[str, Any] = {
        "model": model_path,
        "seed": seed,
        "max_model_len": max_model_len,
        "enforce_eager": True,
    }
    if revision:
        options["revision"] = revision
        options["tokenizer_revision"] = revision
    from vllm.platforms import current_platform

    if memory_fraction is None and current_platform.is_cpu():
        memory_fraction = CPU_MEMORY_FRACTION
    if memory_fraction is not None:
        options["gpu_memory_utilization"] = memory_fraction
    return options


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; random-weight models do emit it.
    return text.replace("\x00", "\ufffd")


class VLLMEngine:
    """A loaded vLLM model that renders prompts and generates greedily.

    Args:
        model_path: Hugging Face model directory, or hub repository id.
        seed: Engine seed.
        max_model_len: Longest prompt plus answer, in tokens.
        revision: Pinned commit, for a hub repository.
        memory_fraction: See ``engine_options``.
    """

    def __init__(
        self,
        model_path: str,
        seed: int = 0,
        max_model_len: int = 2048,
        revision: str | None = None,
        memory_fraction: float | None = None,
    ) -> None:
        vllm = _require("vllm")
        self.model_path = model_path
        self.llm = vllm.LLM(
            **engine_options(model_path, seed, max_model_len, revision, memory_fraction)
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))

    def info(self) -> dict[str, Any]:
        """Where and with what this engine runs, for provenance."""
        import torch
        import vllm

        info: dict[str, Any] = {
            "host": socket.gethostname(),
            "python": platform.python_version(),
            "vllm": vllm.__version__,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
            "chat_template": self.has_chat_template,
        }
        try:
            import ray

            if ray.is_initialized():
                info["ray_node_id"] = ray.get_runtime_context().get_node_id()
                info["ray_node_ip"] = ray.util.get_node_ip_address()
                info["ray_version"] = ray.__version__
        except ImportError:
            pass
        return info

    def render_prompt(self, user_text: str, system: str | None = None) -> str:
        """The exact text fed to the model: the chat template when the model has one."""
        if not self.has_chat_template:
            return f"{system}\n\n{user_text}" if system else user_text
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": user_text})
        rendered = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return str(rendered)

    def generate(
        self, requests: list[dict[str, Any]], decoding: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Generate one answer per request, greedily with a fixed seed.

        Args:
            requests: Each has ``item_id``, ``text`` and optionally ``system``.
            decoding: ``max_tokens``, ``temperature`` and ``seed``.

        Returns:
            One dict per request, in order: ``item_id``, ``prompt`` (as rendered),
            ``text``, ``finish_reason`` and ``num_tokens``.
        """
        vllm = _require("vllm")
        params = vllm.SamplingParams(
            temperature=float(decoding.get("temperature", 0.0)),
            max_tokens=int(decoding.get("max_tokens", 64)),
            seed=int(decoding.get("seed", 0)),
        )
        prompts = [self.render_prompt(r["text"], r.get("system")) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for request, prompt, output in zip(requests, prompts, outputs, strict=True):
            completion = output.outputs[0]
            results.append(
                {
                    "item_id": request["item_id"],
                    "prompt": _clean(prompt),
                    "text": _clean(completion.text),
                    "finish_reason": completion.finish_reason,
                    "num_tokens": len(completion.token_ids),
                }
            )
        return results


def start_engine_actor(
    model_path: str,
    seed: int = 0,
    max_model_len: int = 2048,
    revision: str | None = None,
    memory_fraction: float | None = None,
) -> Any:
    """Start a ``VLLMEngine`` as a Ray actor on the current Ray cluster.

    The actor restarts if its process dies, but never retries a call by
    itself: the caller records every attempt.
    """
    ray = _require("ray")

    actor_class = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(VLLMEngine)
    return actor_class.remote(model_path, seed, max_model_len, revision, memory_fraction)
