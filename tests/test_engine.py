"""The streaming engine: real vLLM in a real Ray actor, a tiny model.

On this CPU machine the engine runs on the CPU build; on a CUDA machine the
same tests run on the GPU, and the `gpu`-marked test checks it does.

One engine is started for the module and shared by the tests (about half a
minute per start on two cores); the test that kills it runs last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sabha.platform.errors import EngineError
from sabha.platform.wire import DecodingParams, GenerationRequest, LocalModelSource
from sabha.workers.streaming import ItemError, render_prompt
from sabha.workers.tiny_models import SIMPLE_CHAT_TEMPLATE, make_tiny_model

TEXTS = ["गेहूं की बुवाई कब करें?", "Panda mahindi lini?", "நெல் சாகுபடி எப்போது?"] * 30
SYSTEM = "Answer briefly."
MAX_MODEL_LEN = 256
GREEDY = DecodingParams(max_tokens=12)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# Two engines share the GPU in the parity test; on CPU, Sabha's default share.
MEMORY_FRACTION = 0.3 if _cuda_available() else None


def _requests(first_id: int, count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(item_id=first_id + i, text=TEXTS[i % 3] + f" {i}", system=SYSTEM)
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def ray_env() -> Iterator[Path]:
    """Ray on loopback with its files and token under a temporary folder."""
    root = Path(tempfile.mkdtemp(prefix="sabha-eng-", dir="/tmp"))
    saved = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(
        HOME=str(root / "home"), RAY_TMPDIR=str(root / "ray"), RAY_USAGE_STATS_ENABLED="0"
    )
    yield root
    from sabha.workers.local import shutdown_ray

    shutdown_ray()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tiny_model(ray_env: Path) -> Path:
    """A tiny model without a chat template."""
    return make_tiny_model(ray_env / "tiny-base", TEXTS, seed=5)


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[object]:
    from sabha.workers.client import EngineClient

    engine = EngineClient(
        LocalModelSource(name="tiny-base", source="local", path=str(tiny_model)),
        max_model_len=MAX_MODEL_LEN,
        memory_fraction=MEMORY_FRACTION,
    )
    yield engine
    engine.close()


def test_chat_template_policies_render_the_prompt(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    chat = AutoTokenizer.from_pretrained(
        make_tiny_model(tmp_path / "chat", TEXTS, chat_template=SIMPLE_CHAT_TEMPLATE)
    )
    base = AutoTokenizer.from_pretrained(make_tiny_model(tmp_path / "base", TEXTS))
    request = GenerationRequest(item_id=1, text="Panda mahindi lini?", system=SYSTEM)
    templated = render_prompt(chat, request, "auto")
    assert templated.startswith("<|system|>") and templated.endswith("<|assistant|>\n")
    assert render_prompt(chat, request, "required") == templated
    assert render_prompt(chat, request, "never") == f"{SYSTEM}\n\nPanda mahindi lini?"
    assert render_prompt(base, request, "auto") == f"{SYSTEM}\n\nPanda mahindi lini?"
    with pytest.raises(ItemError, match="the model has no chat template"):
        render_prompt(base, request, "required")


@pytest.mark.slow
@pytest.mark.vllm
def test_engine_info_records_context_and_dtype(client) -> None:  # type: ignore[no-untyped-def]
    info = client.info()
    assert info.max_model_len == MAX_MODEL_LEN
    assert info.dtype in {"bfloat16", "float16", "float32"}
    assert info.vllm == "0.32.0"
    assert info.cuda_graphs is (info.device != "cpu")
    assert info.ray_node_ip == "127.0.0.1"
    assert info.chat_template is False


@pytest.mark.slow
@pytest.mark.vllm
def test_shards_stream_as_they_complete_and_every_request_is_answered_once(client) -> None:  # type: ignore[no-untyped-def]
    pulled: list[int] = []

    def work() -> Iterator[tuple[int, list[GenerationRequest], DecodingParams, str]]:
        for shard in range(6):
            pulled.append(shard)
            yield shard, _requests(100 * shard, 8), GREEDY, "auto"

    pulled_at_yield = []
    answers: dict[int, list[int]] = {}
    for key, results in client.generate_shards(work(), max_in_flight=16):
        pulled_at_yield.append(len(pulled))
        answers[key] = [r.item_id for r in results]
        assert all(r.error is None and r.num_tokens > 0 for r in results)
    # Two shards (16 items) fit in flight; the next is pulled only when one is done.
    assert pulled_at_yield[0] == 2
    assert pulled_at_yield == sorted(pulled_at_yield) and pulled_at_yield[-1] == 6
    assert answers == {shard: list(range(100 * shard, 100 * shard + 8)) for shard in range(6)}


@pytest.mark.slow
@pytest.mark.vllm
def test_over_long_prompt_is_an_item_error_and_the_rest_of_the_shard_is_answered(client) -> None:  # type: ignore[no-untyped-def]
    requests = _requests(0, 4)
    requests[2] = GenerationRequest(item_id=2, text=" ".join(TEXTS))
    [(key, results)] = list(client.generate_shards([("s", requests, GREEDY, "auto")]))
    assert key == "s" and [r.item_id for r in results] == [0, 1, 2, 3]
    error = results[2].error
    assert error is not None and error.startswith("prompt too long: ")
    assert error.endswith(f"tokens; this model's context is {MAX_MODEL_LEN} (max_model_len)")
    assert results[2].text == "" and results[2].num_tokens == 0
    for result in (results[0], results[1], results[3]):
        assert result.error is None and result.num_tokens > 0


@pytest.mark.slow
@pytest.mark.vllm
def test_required_chat_template_without_one_gives_item_errors(client) -> None:  # type: ignore[no-untyped-def]
    work = [
        ("required", _requests(0, 3), GREEDY, "required"),
        ("never", _requests(10, 1), GREEDY, "never"),
    ]
    results = dict(client.generate_shards(work))
    assert [r.error for r in results["required"]] == ["the model has no chat template"] * 3
    [plain] = results["never"]
    assert plain.error is None and plain.prompt == f"{SYSTEM}\n\n{TEXTS[0]} 0"


@pytest.mark.slow
@pytest.mark.vllm
def test_model_vllm_cannot_load_is_reported_as_such(tiny_model: Path, tmp_path: Path) -> None:
    from sabha.workers.client import EngineClient

    broken = shutil.copytree(tiny_model, tmp_path / "broken")
    config = json.loads((broken / "config.json").read_text())
    config["architectures"] = ["NoSuchModelForCausalLM"]
    (broken / "config.json").write_text(json.dumps(config))
    engine = EngineClient(LocalModelSource(name="broken", source="local", path=str(broken)))
    try:
        with pytest.raises(EngineError, match="vLLM could not load the model") as caught:
            list(engine.generate_shards([(0, _requests(0, 1), GREEDY, "auto")]))
        assert "NoSuchModelForCausalLM" in str(caught.value)
        assert "died while generating" not in str(caught.value)
    finally:
        engine.close()


@pytest.mark.slow
@pytest.mark.vllm
def test_each_request_stops_at_its_languages_budget(client) -> None:  # type: ignore[no-untyped-def]
    # A random-weight model rarely ends an answer, so each runs to its budget.
    budgets = DecodingParams(max_tokens=12, max_tokens_by_language={"hi-Deva": 3, "sw-Latn": 7})
    requests = [
        GenerationRequest(item_id=1, text=TEXTS[0], language="hi-Deva"),
        GenerationRequest(item_id=2, text=TEXTS[1], language="sw-Latn"),
        GenerationRequest(item_id=3, text=TEXTS[2], language="ta-Taml"),  # no budget: max_tokens
    ]
    [(_, results)] = list(client.generate_shards(iter([(0, requests, budgets, "auto")])))
    by_item = {r.item_id: r for r in results}
    for item_id, limit in ((1, 3), (2, 7), (3, 12)):
        assert 0 < by_item[item_id].num_tokens <= limit
        if by_item[item_id].num_tokens == limit:
            assert by_item[item_id].finish_reason == "length"


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
def test_engine_runs_on_the_gpu_with_cuda_graphs(client) -> None:  # type: ignore[no-untyped-def]
    info = client.info()
    assert info.device != "cpu" and info.cuda_graphs
    [(_, results)] = list(client.generate_shards([(0, _requests(0, 8), GREEDY, "auto")]))
    assert all(r.error is None and r.num_tokens > 0 for r in results)


@pytest.mark.slow
@pytest.mark.vllm
def test_engine_killed_mid_stream_is_reported_as_died_while_generating(client) -> None:  # type: ignore[no-untyped-def]
    """Runs last in the module: the killed actor is closed with the module's client."""
    import ray

    pid = ray.get(client.actor.process_id.remote())
    long_answers = DecodingParams(max_tokens=200)
    work = ((shard, _requests(100 * shard, 16), long_answers, "auto") for shard in range(40))
    stream = client.generate_shards(work, max_in_flight=64)
    next(stream)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineError) as caught:
        for _ in stream:
            pass
    message = str(caught.value)
    assert "died while generating" in message
    assert "could not load" not in message
