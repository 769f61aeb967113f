"""The report: metrics.py builds RUN_DIR/metrics.json (the paper's table, gap closed), html.py report.html."""
