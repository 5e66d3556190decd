"""Visual data report: one self-contained HTML page per generation or filter run (``python -m genixer.report``)."""
from .page import render, write_report
from .runs import RunView, load_run

__all__ = ["RunView", "load_run", "render", "write_report"]
