"""The figures of ``batch_scale.py`` as an SVG: peak RSS and vendor calls per poll interval against N.

Written by hand (no plotting library needed): two panels, N on a log axis, one line per series.
``python benchmarks/_scale_plot.py`` redraws ``results/batch_scale.svg`` from ``results/batch_scale.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
FIGURES = RESULTS / "batch_scale.json"
PLOT = RESULTS / "batch_scale.svg"
COLOURS = ["#1b7837", "#762a83", "#e08214", "#2166ac", "#b2182b", "#4d4d4d"]
WIDTH, HEIGHT, PANEL_W, PANEL_H, LEFT, TOP = 900, 380, 360, 250, 70, 50


def save(series: str, figures: dict[str, Any]) -> None:
    """Record one RESULT's figures under ``series`` (e.g. ``theta``), keyed by N, and redraw."""
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data.setdefault(series, {})[str(figures["items"])] = figures
    FIGURES.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    draw(data)


def _panel(x0: int, title: str, key: str, data: dict[str, Any], unit: str) -> list[str]:
    points = {
        name: sorted((int(n), float(f[key])) for n, f in by_n.items() if f.get(key) not in (None, "na"))
        for name, by_n in sorted(data.items())
    }
    xs = [n for pts in points.values() for n, _ in pts] or [10_000]
    ys = [v for pts in points.values() for _, v in pts] or [1.0]
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    top = max(ys) * 1.15 or 1.0
    hi = hi if hi > lo else lo + 1

    def x(n: int) -> float:
        return x0 + (math.log10(n) - lo) / (hi - lo) * PANEL_W

    def y(v: float) -> float:
        return TOP + PANEL_H - v / top * PANEL_H

    out = [
        f'<text x="{x0 + PANEL_W / 2}" y="{TOP - 20}" text-anchor="middle" font-weight="bold">{title}</text>',
        f'<line x1="{x0}" y1="{TOP + PANEL_H}" x2="{x0 + PANEL_W}" y2="{TOP + PANEL_H}" stroke="black"/>',
        f'<line x1="{x0}" y1="{TOP}" x2="{x0}" y2="{TOP + PANEL_H}" stroke="black"/>',
        f'<text x="{x0 - 45}" y="{TOP + PANEL_H / 2}" transform="rotate(-90 {x0 - 45} {TOP + PANEL_H / 2})" '
        f'text-anchor="middle">{unit}</text>',
        f'<text x="{x0 + PANEL_W / 2}" y="{TOP + PANEL_H + 38}" text-anchor="middle">items (log)</text>',
    ]
    for n in sorted(set(xs)):
        out.append(f'<text x="{x(n):.1f}" y="{TOP + PANEL_H + 18}" text-anchor="middle">{n:,}</text>')
    for step in range(5):
        value = top * step / 4
        out.append(f'<text x="{x0 - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.0f}</text>')
    for number, pts in enumerate(points.values()):
        colour = COLOURS[number % len(COLOURS)]
        if not pts:
            continue
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for n, v in pts:
            out.append(f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>')
            out.append(f'<text x="{x(n) + 5:.1f}" y="{y(v) - 6:.1f}" font-size="11">{v:g}</text>')
    return out


def draw(data: dict[str, Any]) -> None:
    body = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 30}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT + 30}" fill="white"/>',
        *_panel(LEFT, "Task peak RSS", "peak_rss_mb", data, "MB"),
        *_panel(
            LEFT + PANEL_W + 110, "Vendor calls per poll interval", "poll_calls_per_interval", data, "calls"
        ),
    ]
    for number, name in enumerate(sorted(data)):
        colour = COLOURS[number % len(COLOURS)]
        y, x = HEIGHT + 5, LEFT + number * 220
        body.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{colour}"/>')
        body.append(f'<text x="{x + 18}" y="{y}">{name}</text>')
    body.append("</svg>")
    PLOT.write_text("\n".join(body) + "\n")


if __name__ == "__main__":
    draw(json.loads(FIGURES.read_text()))
