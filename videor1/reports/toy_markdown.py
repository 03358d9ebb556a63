"""reports/toy.md from a ToyReport: the prose and tables live in templates/toy.md.j2, the number formats here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

import jinja2

from .toy import METHOD_LABELS, ToyReport


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def spread_text(s: dict, unit: str = " points", digits: int = 1) -> str:
    """A spread (toy.spread) in words: +1.2 points ± 0.3 (sd), range +0.9 to +1.5, n = 3."""
    sd = "" if s["sd"] is None else f" ± {s['sd']:.{digits}f} (sd)"
    return f"{s['mean']:+.{digits}f}{unit}{sd}, range {s['min']:+.{digits}f} to {s['max']:+.{digits}f}, n = {s['n']}"


ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the render instead of printing nothing
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # Markdown, not HTML
)
ENV.filters.update(fmt=fmt, spread=spread_text, num=format, label=lambda method: METHOD_LABELS.get(method, method))


def render_markdown(report: ToyReport, figures: Mapping[str, str]) -> str:
    """The report; ``figures`` maps each figure's name (toy_figures.draw_figures) to its link from the report."""
    context = {f.name: getattr(report, f.name) for f in fields(report) if f.name != "metrics"}
    return ENV.get_template("toy.md.j2").render(**report.metrics, **context, figures=figures)
