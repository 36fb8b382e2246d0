"""A model's Sabha scores as a ``model-index`` block for its Hugging Face model card.

Built with ``huggingface_hub`` (``ModelCardData`` and ``EvalResult``), so the
YAML is what the Hub reads: one result per benchmark (its primary metric over
every language) and one per language (``dataset_config`` is the language
tag). Each result names the dataset version it was measured on
(``dataset_revision``: the content hash) and links back to the scored job
(``source_url``), and its ``metric_name`` carries the 95% interval and n,
which the model-index format has no field for.
"""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCardData

from .public import Cell, ModelPage, ModelScore

__all__ = ["model_index_card_data", "model_index_yaml"]

_TASK_TYPES = {"generation": "text-generation", "classification": "text-classification"}


def _metric_name(label: str, cell: Cell) -> str:
    if cell.too_few or cell.ci_low is None or cell.ci_high is None:
        return f"{label} (n={cell.n}, too few items for an interval)"
    return f"{label} (95% CI {cell.ci_low:.2f}–{cell.ci_high:.2f}, n={cell.n})"


def _result(score: ModelScore, cell: Cell, site_url: str, language: str | None) -> EvalResult:
    benchmark = score.benchmark
    return EvalResult(
        task_type=_TASK_TYPES.get(benchmark.task, benchmark.task),
        task_name=benchmark.title,
        dataset_type=benchmark.dataset.name,
        dataset_name=benchmark.title if language is None else f"{benchmark.title} ({language})",
        dataset_config=language,
        dataset_split="test",
        dataset_revision=benchmark.dataset.version,
        metric_type=benchmark.primary_metric,
        metric_name=_metric_name(benchmark.primary_metric_label, cell),
        metric_value=cell.value,
        source_name="Sabha",
        source_url=f"{site_url.rstrip('/')}{score.run_url}",
    )


def model_index_card_data(page: ModelPage, site_url: str) -> ModelCardData:
    """The card metadata holding a model's scores (``site_url``: the site's address)."""
    results: list[EvalResult] = []
    for score in page.scores:
        if score.score is not None:
            results.append(_result(score, score.score, site_url, None))
        for language, cell in sorted(score.languages.items()):
            results.append(_result(score, cell, site_url, language))
    return ModelCardData(model_name=page.model.name, eval_results=results or None)


def model_index_yaml(page: ModelPage, site_url: str) -> str:
    """The YAML to paste into the metadata block (between the ``---`` lines) of a model card."""
    return model_index_card_data(page, site_url).to_yaml() + "\n"
