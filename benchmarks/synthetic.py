"""A synthetic generation benchmark for the latency scripts: its items file and its YAML.

The scripts seed scores directly; the items only have to exist and validate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

METRICS = ["chrf++", "bleu", "ter"]


def write_benchmark(
    folder: Path, name: str, title: str, languages: list[str], items: list[dict[str, Any]]
) -> Path:
    """Write ``items`` (benchmark item rows) and a chrF++-first benchmark over ``languages``
    into ``folder``; the path of its YAML, for ``load_benchmark_file``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.jsonl").write_text(
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
    )
    spec = {
        "name": name,
        "title": title,
        "description": "Synthetic benchmark for the latency scripts.",
        "task": "generation",
        "languages": languages,
        "dataset": {
            "name": name,
            "items": f"{name}.jsonl",
            "license": "CC-BY-4.0",
            "card": {
                "summary": "Synthetic.",
                "collection_process": "Generated.",
                "intended_use": "Latency measurement.",
                "limitations": "Not real data.",
            },
        },
        "prompt": {"template": "{question}"},
        "metrics": METRICS,
        "primary_metric": "chrf++",
        "breakdowns": ["language"],
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    return path
