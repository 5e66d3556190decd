"""Evaluation: quality tables of generated data and of filters, checked by a configured oracle."""
