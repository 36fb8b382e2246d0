"""sacrebleu's per-item statistics, computed with less work and the same numbers.

``metric._extract_corpus_statistics(hyps, [refs])`` pre-processes and
analyses every reference again at each call (chrF's character and word
n-gram counters, BLEU's tokenised n-grams, TER's tokenised words), and TER
runs its beam edit distance on lists of ``(cost, op)`` tuples. Here:

- one metric object per metric and process, and each reference's analysis
  (sacrebleu's own ``_preprocess_segment`` and ``_extract_reference_info``)
  kept in a bounded cache keyed by the reference text: references are the
  same for every model and every run of a benchmark;
- each hypothesis goes through sacrebleu's own ``_preprocess_segment`` and
  ``_compute_segment_statistics``, as in ``_extract_corpus_statistics``;
- TER's edit distance (``lib_ter.BeamEditDistance``) is redone on a tuple of
  costs and a string of operations per row with the same beam, the same
  preference among operations, the same row cache and the same trace; its
  shift search is sacrebleu's own ``lib_ter._shift``.

The rows are equal to sacrebleu's, number for number
(``tests/test_sacrebleu_stats.py`` checks hostile multilingual strings).
Only single-reference statistics are computed here, as Sabha stores them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from sacrebleu.metrics import lib_ter

__all__ = ["REFERENCE_CACHE_SIZE", "clear_reference_cache", "segment_statistics"]

# References analysed and kept per metric (least recently used dropped first).
REFERENCE_CACHE_SIZE = 4096

_INF = lib_ter._INT_INFINITY
_NOP, _SUB, _INS, _DEL, _UNDEF = (
    lib_ter._OP_NOP,
    lib_ter._OP_SUB,
    lib_ter._OP_INS,
    lib_ter._OP_DEL,
    lib_ter._OP_UNDEF,
)

_lock = threading.Lock()
_metrics: dict[str, Any] = {}
_references: dict[str, OrderedDict[str | None, dict[str, Any]]] = {}


def clear_reference_cache() -> None:
    """Forget every analysed reference (benchmarks call it to time a fresh process)."""
    with _lock:
        _references.clear()


def segment_statistics(
    name: str, factory: Callable[[], Any], predictions: Sequence[str], references: Sequence[str]
) -> list[list[float]]:
    """Per-item statistics of a sacrebleu metric, equal to its ``_extract_corpus_statistics``.

    Args:
        name: The metric's registry name (the key of its caches).
        factory: Builds the sacrebleu metric object (called once per process).
        predictions: One hypothesis per item.
        references: One reference per item.

    Returns:
        One list of statistics per item.
    """
    with _lock:
        metric = _metrics.get(name)
        if metric is None:
            metric = _metrics[name] = factory()
        cache = _references.setdefault(name, OrderedDict())
    compute = _ter_segment if type(metric).__name__ == "TER" else metric._compute_segment_statistics
    rows = []
    for hypothesis, reference in zip(predictions, references, strict=True):
        info = _reference_info(metric, cache, reference)
        rows.append(compute(metric._preprocess_segment(hypothesis), info))
    return rows


def _reference_info(
    metric: Any, cache: OrderedDict[str | None, dict[str, Any]], reference: str | None
) -> Any:
    """sacrebleu's ``_cache_references`` entry for one reference, from the cache if there."""
    with _lock:
        info = cache.get(reference)
        if info is not None:
            cache.move_to_end(reference)
            return info
    lines = [] if reference is None else [metric._preprocess_segment(reference)]
    info = metric._extract_reference_info(lines)
    with _lock:
        cache[reference] = info
        while len(cache) > REFERENCE_CACHE_SIZE:
            cache.popitem(last=False)
    return info


def _ter_segment(hypothesis: str, info: dict[str, Any]) -> list[float]:
    """``TER._compute_segment_statistics`` with the edit distance below."""
    ref_lengths = 0
    best_num_edits = int(1e16)
    words_hyp = hypothesis.split()
    ref_words = info["ref_words"]
    for words_ref in ref_words:
        num_edits, ref_len = _translation_edit_rate(words_hyp, words_ref)
        ref_lengths += ref_len
        if num_edits < best_num_edits:
            best_num_edits = num_edits
    return [best_num_edits, ref_lengths / len(ref_words)]


def _translation_edit_rate(words_hyp: list[str], words_ref: list[str]) -> tuple[int, int]:
    """``lib_ter.translation_edit_rate`` with ``_EditDistance``."""
    if not words_ref:
        return len(words_hyp), 0
    cached_ed = _EditDistance(words_ref)
    shifts = 0
    input_words = words_hyp
    checked_candidates = 0
    while True:
        delta, new_input_words, checked_candidates = lib_ter._shift(
            input_words, words_ref, cached_ed, checked_candidates
        )
        if checked_candidates >= lib_ter._MAX_SHIFT_CANDIDATES or delta <= 0:
            break
        shifts += 1
        input_words = new_input_words
    edit_distance, _trace = cached_ed(input_words)
    return shifts + edit_distance, len(words_ref)


# One row of the edit distance matrix: the costs and the operations, per reference position.
_Row = tuple[tuple[int, ...], str]


class _EditDistance:
    """``lib_ter.BeamEditDistance`` with each row held as costs and a string of operations.

    The same beam around the pseudo-diagonal, the same order of preference
    (no-op or substitution, then deletion, then insertion, each taken only
    when strictly cheaper, starting from "infinity"), the same row cache
    (a trie over hypothesis words, at most ``_MAX_CACHE_SIZE`` rows) and the
    same trace.
    """

    def __init__(self, words_ref: list[str]) -> None:
        self._words_ref = words_ref
        self._n = len(words_ref)
        self._initial_row: _Row = (
            tuple(i * lib_ter._COST_INS for i in range(self._n + 1)),
            _INS * (self._n + 1),
        )
        self._cache: dict[str, tuple[dict[str, Any], _Row]] = {}
        self._cache_size = 0

    def __call__(self, words_hyp: list[str]) -> tuple[int, str]:
        start, rows = self._find_cache(words_hyp)
        distance, new_rows, trace = self._edit_distance(words_hyp, start, rows)
        self._add_cache(words_hyp, new_rows)
        return distance, trace

    def _edit_distance(
        self, words_h: list[str], start_h: int, rows: list[_Row]
    ) -> tuple[int, list[_Row], str]:
        n_h = len(words_h)
        n_ref = self._n
        ref = self._words_ref
        length_ratio = n_ref / n_h if words_h else 1
        if lib_ter._BEAM_WIDTH < length_ratio / 2:
            beam_width = math.ceil(length_ratio / 2 + lib_ter._BEAM_WIDTH)
        else:
            beam_width = lib_ter._BEAM_WIDTH
        rows = list(rows)
        prev_costs = rows[-1][0]
        for i in range(start_h + 1, n_h + 1):
            costs = [_INF] * (n_ref + 1)
            ops = [_UNDEF] * (n_ref + 1)
            pseudo_diag = math.floor(i * length_ratio)
            min_j = max(0, pseudo_diag - beam_width)
            max_j = n_ref + 1 if i == n_h else min(n_ref + 1, pseudo_diag + beam_width)
            if min_j == 0 and max_j > 0:
                costs[0] = prev_costs[0] + 1
                ops[0] = _DEL
                min_j = 1
            word = words_h[i - 1]
            left = costs[min_j - 1]
            for j in range(min_j, max_j):
                if word == ref[j - 1]:
                    best = prev_costs[j - 1]
                    op = _NOP
                else:
                    best = prev_costs[j - 1] + 1
                    op = _SUB
                if best >= _INF:  # never cheaper than the cell's "infinity"
                    best = _INF
                    op = _UNDEF
                cost = prev_costs[j] + 1
                if cost < best:
                    best = cost
                    op = _DEL
                cost = left + 1
                if cost < best:
                    best = cost
                    op = _INS
                costs[j] = best
                ops[j] = op
                left = best
            # Tuples of ints and strings are left alone by the garbage collector,
            # which would otherwise walk every cached row at each collection.
            prev_costs = tuple(costs)
            rows.append((prev_costs, "".join(ops)))
        trace = []
        i, j = n_h, n_ref
        while i > 0 or j > 0:
            op = rows[i][1][j]
            trace.append(op)
            if op == _SUB or op == _NOP:
                i -= 1
                j -= 1
            elif op == _INS:
                j -= 1
            elif op == _DEL:
                i -= 1
            else:
                raise Exception(f"unknown operation {op!r}")
        trace.reverse()
        return rows[-1][0][-1], rows[start_h + 1 :], "".join(trace)

    def _add_cache(self, words_hyp: list[str], new_rows: list[_Row]) -> None:
        if self._cache_size >= lib_ter._MAX_CACHE_SIZE:
            return
        node = self._cache
        skip = len(words_hyp) - len(new_rows)
        for i in range(skip):
            node = node[words_hyp[i]][0]
        for word, row in zip(words_hyp[skip:], new_rows, strict=True):
            if word not in node:
                node[word] = ({}, row)
                self._cache_size += 1
            node = node[word][0]

    def _find_cache(self, words_hyp: list[str]) -> tuple[int, list[_Row]]:
        node = self._cache
        start = 0
        rows = [self._initial_row]
        for word in words_hyp:
            if word not in node:
                break
            start += 1
            node, row = node[word]
            rows.append(row)
        return start, rows
