"""The run report: one self-contained HTML page (plots embedded as PNG data URIs) built from a run
directory of ``postlab run``. ``postlab report DIR`` rebuilds it from the files alone."""

from postlab.report.html import build_report

__all__ = ["build_report"]
