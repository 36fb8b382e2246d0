"""A whole leaderboard as one table, for the CSV and Parquet downloads.

Both files hold the same columns and values: rank, model, revision, run,
ties, failed items, then every metric with its interval, the primary metric
per breakdown group, and the community columns. A missing score is empty in
CSV and null in Parquet; a group with too few items has a value and no
interval.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..public import Cell, LeaderboardPage

__all__ = ["leaderboard_csv", "leaderboard_parquet", "leaderboard_table"]


def _cells(cell: Cell | None) -> list[Any]:
    if cell is None:
        return [None, None, None]
    if cell.too_few:
        return [cell.value, None, None]
    return [cell.value, cell.ci_low, cell.ci_high]


def leaderboard_table(board: LeaderboardPage) -> tuple[list[str], list[list[Any]]]:
    """The header and one row per ranked model (None where a value is missing)."""
    metrics = board.columns.metrics
    breakdowns = board.columns.breakdowns
    primary = board.benchmark.primary_metric
    community = board.columns.community
    header = ["rank", "model", "smoke_test", "revision", "run", "tied_with", "failed_items"]
    for metric in metrics:
        header += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    for breakdown, groups in breakdowns.items():
        for group in groups:
            label = f"{primary}[{breakdown}={group}]"
            header += [label, f"{label}_ci_low", f"{label}_ci_high"]
    for metric in community:
        header += [metric, f"{metric}_ci_low", f"{metric}_ci_high", f"{metric}_n"]
        header += [f"{metric}_judgements", f"{metric}_agreement"]
    rows = []
    for row in board.rows:
        line: list[Any] = [
            row.rank,
            row.model.name,
            row.model.smoke_test,
            row.model.revision,
            row.job_id,
            "; ".join(row.tied_with),
            row.failed_items,
        ]
        for metric in metrics:
            line += _cells(row.scores.get(metric))
        for breakdown, groups in breakdowns.items():
            for group in groups:
                line += _cells(row.breakdowns.get(breakdown, {}).get(group))
        for metric in community:
            judged = row.community.get(metric)
            line += _cells(judged)
            line += [judged.n, judged.judgements, judged.agreement] if judged else [None] * 3
        rows.append(line)
    return header, rows


def leaderboard_csv(board: LeaderboardPage) -> str:
    """The table as CSV (missing values empty)."""
    header, rows = leaderboard_table(board)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([["" if value is None else value for value in row] for row in rows])
    return buffer.getvalue()


def leaderboard_parquet(board: LeaderboardPage) -> bytes:
    """The table as Parquet (missing values null; a score column is float64 throughout)."""
    header, rows = leaderboard_table(board)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    fields = []
    for name, values in columns.items():
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            kind = pa.bool_()
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            kind = pa.int64() if name in ("rank", "run", "failed_items") else pa.float64()
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    table = pa.table(
        {f.name: pa.array(columns[f.name], type=f.type) for f in fields}, schema=pa.schema(fields)
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
