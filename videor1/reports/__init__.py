"""The pipeline's reports: the summary in Markdown and its PNG curves."""

from .figures import plot_curves, read_curve, smooth
from .summary import render_summary

__all__ = ["plot_curves", "read_curve", "render_summary", "smooth"]
