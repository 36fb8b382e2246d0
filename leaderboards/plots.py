"""Plots drawn on the server as SVG: bars with their 95% interval whiskers.

Pages embed the SVG in their HTML, so a plot needs no script (the CSP allows
none) and no second request; every plot has a table beside it with the same
numbers, which is what screen readers read (the SVG carries a title and a
one-line description). Labels and values are escaped; coordinates are plain
numbers, so nothing a benchmark or model name holds can become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "interval_bars"]

_ROW = 26  # pixels per bar
_LABEL = 190  # width of the label column
_PLOT = 330  # width of the bars' scale
_VALUE = 70  # width of the value column
_TOP = 8
_COLOURS = ("#0b6e4f", "#b5651d", "#3b5ba5")  # contrast above 4.5:1 on white, not by hue alone


@dataclass(frozen=True)
class Bar:
    """One bar: a label, a value and its interval (None: too few items for one)."""

    label: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    note: str = ""  # shown on hover, e.g. "n=36"
    series: int = 0  # which of several compared things it is (its colour)


def _x(value: float, top: float) -> float:
    return round(_LABEL + max(0.0, min(value, top)) / top * _PLOT, 2)


def interval_bars(bars: Sequence[Bar], title: str, scale_to: float = 100.0) -> str:
    """Horizontal bars, one per ``bars`` entry in the given order, with interval whiskers.

    The scale runs from 0 to ``scale_to`` (scores are percentages), or to the
    largest interval end when one is larger (TER can exceed 100).
    """
    top = max([scale_to, *(b.ci_high or b.value for b in bars)]) or 1.0
    height = _TOP * 2 + _ROW * max(len(bars), 1) + 18
    width = _LABEL + _PLOT + _VALUE
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in (0.0, top / 2, top):
        x = _x(tick, top)
        parts.append(
            f'<line x1="{x}" y1="{_TOP}" x2="{x}" y2="{height - 18}" stroke="#d9dde4"/>'
            f'<text x="{x}" y="{height - 4}" font-size="11" text-anchor="middle" '
            f'fill="#5b6474">{tick:g}</text>'
        )
    for i, bar in enumerate(bars):
        y = _TOP + i * _ROW
        middle = y + _ROW / 2
        hover = f"{bar.label}: {bar.value:.1f}"
        if bar.ci_low is not None and bar.ci_high is not None:
            hover += f" (95% CI {bar.ci_low:.1f}–{bar.ci_high:.1f})"
        else:
            hover += " (too few items for an interval)"
        if bar.note:
            hover += f", {bar.note}"
        parts.append(f"<g><title>{escape(hover)}</title>")
        parts.append(
            f'<text x="{_LABEL - 6}" y="{middle + 4}" font-size="12" text-anchor="end" '
            f'fill="#1d2330">{escape(bar.label[:32])}</text>'
        )
        parts.append(
            f'<rect x="{_LABEL}" y="{y + 5}" width="{round(_x(bar.value, top) - _LABEL, 2)}" '
            f'height="{_ROW - 10}" fill="{_COLOURS[bar.series % len(_COLOURS)]}" '
            f'fill-opacity="0.75"/>'
        )
        if bar.ci_low is not None and bar.ci_high is not None:
            low, high = _x(bar.ci_low, top), _x(bar.ci_high, top)
            parts.append(
                f'<path d="M{low} {middle}H{high}M{low} {middle - 5}V{middle + 5}'
                f'M{high} {middle - 5}V{middle + 5}" stroke="#1d2330" stroke-width="1.5" '
                f'fill="none"/>'
            )
        parts.append(
            f'<text x="{_LABEL + _PLOT + 6}" y="{middle + 4}" font-size="12" '
            f'fill="#1d2330">{bar.value:.1f}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
