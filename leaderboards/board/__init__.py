"""Leaderboard data: ranked runs with CIs and provenance, as ``*Public`` models.

The leaderboard of a benchmark is a read model (``leaderboard_entry``),
rebuilt whenever one of its scoring runs lands (``_read_model``); a page is
then one query over plain rows, already ranked, 50 at a time (``_queries``).
A run's provenance (``_provenance``) and the published descriptions of
models, datasets, benchmarks and data cards (``_cards``) complete it.
"""

from ._cards import benchmark_public, benchmark_summaries, data_card
from ._datasets import dataset_file, dataset_page
from ._languages import LANGUAGE_TOP, language_page, language_summaries
from ._models import compare_models, model_page
from ._provenance import run_details
from ._queries import PER_PAGE, leaderboard, leaderboard_version, read_model_version
from ._read_model import rebuild_leaderboard

__all__ = [
    "LANGUAGE_TOP",
    "PER_PAGE",
    "compare_models",
    "benchmark_public",
    "benchmark_summaries",
    "data_card",
    "dataset_file",
    "dataset_page",
    "language_page",
    "language_summaries",
    "leaderboard",
    "leaderboard_version",
    "model_page",
    "read_model_version",
    "rebuild_leaderboard",
    "run_details",
]
