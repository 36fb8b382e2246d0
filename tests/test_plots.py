"""Server-drawn SVG plots: well-formed, escaped, and drawn where the numbers say."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from sabha.leaderboards.plots import Bar, interval_bars

SVG = "{http://www.w3.org/2000/svg}"


def test_bars_and_whiskers_stand_where_their_values_are() -> None:
    svg = interval_bars(
        [Bar("Kiswahili", 50.0, 40.0, 60.0, "n=36"), Bar("தமிழ்", 25.0, None, None)], "chrF++"
    )
    root = ET.fromstring(svg)  # well-formed XML
    assert root.get("role") == "img" and root.get("aria-label") == "chrF++"
    rects = root.findall(f".//{SVG}rect")
    assert len(rects) == 2
    width_half, width_quarter = (float(r.get("width", "")) for r in rects)
    assert width_half == 2 * width_quarter  # 50 vs 25 on one scale from 0
    whiskers = root.findall(f".//{SVG}path")
    assert len(whiskers) == 1  # too few items: no whisker is drawn
    ends = [float(x) for x in re.findall(r"M([\d.]+) ", whiskers[0].get("d", ""))[:1]]
    start = float(rects[0].get("x", ""))
    assert ends[0] == start + width_half * 40 / 50  # the interval's low end at 40
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "Kiswahili: 50.0 (95% CI 40.0–60.0), n=36" in titles
    assert "தமிழ்: 25.0 (too few items for an interval)" in titles


def test_labels_cannot_become_markup() -> None:
    svg = interval_bars([Bar('<script>alert(1)</script>"', 10.0, 5.0, 15.0)], "a<b & c")
    assert "<script>" not in svg
    root = ET.fromstring(svg)
    assert root.get("aria-label") == "a<b & c"
    assert not root.findall(f".//{SVG}script")


def test_the_scale_grows_for_values_above_100() -> None:
    svg = interval_bars([Bar("TER", 150.0, 120.0, 180.0), Bar("low", 90.0, 80.0, 100.0)], "TER")
    root = ET.fromstring(svg)
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "180" in labels  # the axis ends at the largest interval end
    widths = [float(r.get("width", "")) for r in root.findall(f".//{SVG}rect")]
    assert widths[0] == 150 / 90 * widths[1]
