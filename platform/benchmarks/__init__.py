"""Benchmarks as data: typed YAML definitions with JSONL items.

The schema: ``_schema`` (benchmark files, prompts, judges, item rows),
``_dataset`` (inline datasets, references, dataset files and their cards),
``_decoding`` (decoding, answer budgets, applying overrides), ``_answer`` and
``_negation`` (how classification answers are read), ``_fields`` (text limits
and the named field types). Reading files: ``_loader`` (benchmark and dataset
files, checked alone and together), ``_yaml`` (YAML with each field's line),
``_problems`` (validation errors with file, line and field), ``_items`` (JSONL
items and their content hash). Identities in ``_identity``. Other packages
import only the names below.
"""

from ._answer import AnswerSpec
from ._dataset import CardText, DatasetFileSpec, DatasetRef, DatasetSpec
from ._decoding import AnswerBudget, DecodingSpec, apply_decoding_overrides
from ._fields import LIMITS, RESERVED_COLUMNS, FieldProblems
from ._identity import definition_identity, generation_identity, scoring_identity
from ._items import MAX_ITEMS, MAX_ITEMS_FILE_BYTES, content_hash
from ._loader import (
    DatasetContent,
    LoadedBenchmark,
    benchmarks_together_problems,
    datasets_together_problems,
    load_benchmark_file,
    load_dataset_file,
    starter_benchmark_paths,
)
from ._negation import BUILTIN_NEGATION, NegationCues, NegationSpec, joined_spellings
from ._prompt import render_prompt
from ._schema import BenchmarkSpec, ItemSpec, PromptSpec

__all__ = [
    "AnswerBudget",
    "BUILTIN_NEGATION",
    "NegationCues",
    "NegationSpec",
    "joined_spellings",
    "LIMITS",
    "MAX_ITEMS",
    "MAX_ITEMS_FILE_BYTES",
    "RESERVED_COLUMNS",
    "AnswerSpec",
    "BenchmarkSpec",
    "CardText",
    "DatasetContent",
    "DatasetFileSpec",
    "DatasetRef",
    "DatasetSpec",
    "DecodingSpec",
    "FieldProblems",
    "ItemSpec",
    "LoadedBenchmark",
    "PromptSpec",
    "apply_decoding_overrides",
    "benchmarks_together_problems",
    "content_hash",
    "definition_identity",
    "generation_identity",
    "scoring_identity",
    "datasets_together_problems",
    "load_benchmark_file",
    "load_dataset_file",
    "render_prompt",
    "starter_benchmark_paths",
]
