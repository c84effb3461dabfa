"""The self-contained HTML report of a study or a run (its pictures come from filterprior.figures)."""

from filterprior.report.html import build_report

__all__ = ["build_report"]
