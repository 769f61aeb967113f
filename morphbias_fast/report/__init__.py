"""The report stage (Config, run, Result; run_seeds for a seed aggregate).

metrics.py  the paper's table per model on the test split (checked against fairlearn), gap closed, seed means
twins.py    every model on the counterfactual twins of the test subjects
page.py     report.html: the headline, the cells, the paper's table and the figures, self-contained; the
            same tables and page for other comparisons (write_page, table_html)
stage.py    writes RUN/metrics.json and RUN/report.html
"""
from morphbias_fast.report.metrics import (
    COLUMNS,
    aggregate,
    gap_closed,
    metrics_table,
    t_interval,
)
from morphbias_fast.report.page import table_html, write_page
from morphbias_fast.report.stage import Config, Result, run, run_seeds, table
from morphbias_fast.report.twins import twin_probabilities

__all__ = [
    "COLUMNS",
    "Config",
    "Result",
    "aggregate",
    "gap_closed",
    "metrics_table",
    "run",
    "run_seeds",
    "t_interval",
    "table",
    "table_html",
    "twin_probabilities",
    "write_page",
]
