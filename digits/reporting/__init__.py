"""Reporting: the final test (evaluate), the figures (plot), a review, the run summary, the recipes."""
