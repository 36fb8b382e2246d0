"""Benchmarks as data: typed YAML definitions with JSONL items."""

from ._loader import LoadedBenchmark, content_hash, load_benchmark_file, starter_benchmark_paths
from ._schema import BenchmarkSpec, CardText, DatasetSpec, DecodingSpec, ItemSpec, PromptSpec

__all__ = [
    "BenchmarkSpec",
    "CardText",
    "DatasetSpec",
    "DecodingSpec",
    "ItemSpec",
    "LoadedBenchmark",
    "PromptSpec",
    "content_hash",
    "load_benchmark_file",
    "starter_benchmark_paths",
]
