"""A streaming vLLM engine for a Ray actor: many shards in vLLM's batch at once.

The actor is an async Ray actor over vLLM's ``AsyncLLM``: every call to
``generate_shard`` adds its requests to the one running engine, so vLLM's
continuous batching mixes requests of all shards in flight, and each call
returns as soon as its own last request finishes. Problems of one item (too
long, no chat template, a tokenizer error) become that item's ``error``; the
rest of the shard goes on.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sabha.platform.wire import (
    ChatTemplatePolicy,
    DecodingParams,
    EngineInfo,
    GenerationRequest,
    GenerationResult,
)

from .engine import clean_text, describe_host, engine_options, require_extra

__all__ = ["ItemError", "StreamingEngine", "render_prompt"]


class ItemError(Exception):
    """One item cannot be generated; its message becomes the item's ``error``."""


def render_prompt(tokenizer: Any, request: GenerationRequest, policy: ChatTemplatePolicy) -> str:
    """The exact text fed to the model for one request.

    Args:
        tokenizer: A Hugging Face tokenizer (with ``chat_template`` and
            ``apply_chat_template``).
        request: The user text and optional system prompt.
        policy: "auto" uses the tokenizer's chat template when it has one;
            "never" gives plain text (system, blank line, user text);
            "required" raises ``ItemError`` when there is no template.
    """
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if policy == "required" and not has_template:
        raise ItemError("the model has no chat template")
    if policy == "never" or not has_template:
        return f"{request.system}\n\n{request.text}" if request.system else request.text
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages.append({"role": "user", "content": request.text})
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def one_line(exc: BaseException) -> str:
    """An exception as one readable line of at most 300 characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."


class StreamingEngine:
    """A vLLM ``AsyncLLM`` that answers shards concurrently (run as an async Ray actor).

    Args:
        model_path: Hugging Face model directory, or hub repository id.
        seed: Engine seed.
        max_model_len: Longest prompt plus answer, in tokens.
        revision: Pinned commit, for a hub repository.
        memory_fraction: See ``engine_options``.
        tensor_parallel_size: GPUs of one node the model is split across (the
            actor must run in a placement group of that many GPU bundles,
            see ``engine.engine_actor_request``).
    """

    def __init__(
        self,
        model_path: str,
        seed: int = 0,
        max_model_len: int = 2048,
        revision: str | None = None,
        memory_fraction: float | None = None,
        tensor_parallel_size: int = 1,
    ) -> None:
        require_extra("vllm")
        if tensor_parallel_size > 1:
            import os

            # Ray hides every GPU from this driver actor (it asked for none);
            # vLLM's Ray workers choose their own devices, as in vLLM's example
            # of tensor parallelism inside a Ray actor.
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        options = engine_options(
            model_path, seed, max_model_len, revision, memory_fraction, tensor_parallel_size
        )
        args = AsyncEngineArgs(**options, disable_log_stats=True)
        # LLM_CLASS gives the offline batch sizes that `vllm.LLM` uses (e.g. 256
        # sequences on CPU, 1024 on an H100); the default context gives 128.
        self.engine = AsyncLLM.from_engine_args(args, usage_context=UsageContext.LLM_CLASS)
        self.tokenizer = self.engine.get_tokenizer()
        config = self.engine.vllm_config
        self.max_model_len = int(config.model_config.max_model_len)
        self.dtype = str(config.model_config.dtype).removeprefix("torch.")
        self.max_num_seqs = int(config.scheduler_config.max_num_seqs)
        self.cuda_graphs = not options["enforce_eager"]
        self.tensor_parallel_size = tensor_parallel_size

    def info(self) -> EngineInfo:
        """Where and with what this engine runs, for provenance."""
        return EngineInfo(
            **describe_host(),
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            chat_template=bool(getattr(self.tokenizer, "chat_template", None)),
            max_num_seqs=self.max_num_seqs,
            cuda_graphs=self.cuda_graphs,
            tensor_parallel_size=self.tensor_parallel_size,
        )

    def process_id(self) -> int:
        """The actor's process id (tests kill it to simulate a crash)."""
        import os

        return os.getpid()

    async def generate_shard(
        self,
        requests: list[GenerationRequest],
        decoding: DecodingParams,
        chat_template: ChatTemplatePolicy = "auto",
    ) -> list[GenerationResult]:
        """Answer every request of a shard; returns when the last one is done.

        Returns:
            One result per request, in order, with the same item ids.

        Raises:
            vllm.v1.engine.exceptions.EngineDeadError: vLLM's engine process died.
        """
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params: dict[int, Any] = {}  # one per budget: a language's, or max_tokens

        def params_for(request: GenerationRequest) -> Any:
            limit = decoding.max_tokens_for(request.language)
            if limit not in params:
                params[limit] = SamplingParams(
                    temperature=decoding.temperature,
                    top_p=decoding.top_p,
                    max_tokens=limit,
                    seed=decoding.seed,
                    ignore_eos=decoding.ignore_eos,
                    output_kind=RequestOutputKind.FINAL_ONLY,
                )
            return params[limit]

        return list(
            await asyncio.gather(*(self._answer(r, params_for(r), chat_template) for r in requests))
        )

    def _tokenize(
        self, request: GenerationRequest, policy: ChatTemplatePolicy
    ) -> tuple[str, list[int]]:
        try:
            prompt = render_prompt(self.tokenizer, request, policy)
            # As `vllm.LLM.generate` does for a text prompt.
            token_ids = list(self.tokenizer.encode(prompt, add_special_tokens=True))
        except ItemError:
            raise
        except Exception as exc:  # a template or tokenizer failure is the item's own
            raise ItemError(f"could not render the prompt: {one_line(exc)}") from exc
        if len(token_ids) >= self.max_model_len:
            raise ItemError(
                f"prompt too long: {len(token_ids):,} tokens; this model's context is "
                f"{self.max_model_len:,} (max_model_len)"
            )
        return prompt, token_ids

    async def _answer(
        self, request: GenerationRequest, params: Any, policy: ChatTemplatePolicy
    ) -> GenerationResult:
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError

        try:
            prompt, token_ids = self._tokenize(request, policy)
        except ItemError as exc:
            return GenerationResult(item_id=request.item_id, error=str(exc))
        final = None
        try:
            async for output in self.engine.generate(
                TokensPrompt(prompt_token_ids=token_ids), params, uuid.uuid4().hex
            ):
                final = output
        except EngineDeadError:
            raise
        except Exception as exc:  # vLLM rejected or failed this one request
            cause = exc.__cause__ or exc
            return GenerationResult(
                item_id=request.item_id, prompt=clean_text(prompt), error=f"vLLM: {one_line(cause)}"
            )
        if final is None or not final.outputs:
            return GenerationResult(
                item_id=request.item_id, prompt=clean_text(prompt), error="vLLM returned no output"
            )
        completion = final.outputs[0]
        return GenerationResult(
            item_id=request.item_id,
            prompt=clean_text(prompt),
            text=clean_text(completion.text),
            finish_reason=completion.finish_reason,
            num_tokens=len(completion.token_ids),
        )
