"""Benchmark metrics that reproduce the official evaluation scripts used for LLaVA-1.5 and Shikra.

Every function here is a re-implementation (not a copy) of one official script, written so that
it gives the same number on the same inputs, quirks included. Each quirk reproduced on purpose,
and each place where we deliberately differ (always an input the official script would crash
on or silently mis-handle), is listed in the function's docstring and in docs/metrics.md.

===========================  ==========================================================
function                     official behaviour it matches
===========================  ==========================================================
:func:`normalize_vqa_answer`  ``EvalAIAnswerProcessor`` in LLaVA ``llava/eval/m4c_evaluator.py``
:func:`vqa_accuracy`          ``TextVQAAccuracyEvaluator`` in the same file (docs/metrics.md §2)
:func:`pope_metrics`          LLaVA ``llava/eval/eval_pope.py`` (docs/metrics.md §3)
:func:`mme_scores`            MME ``eval_tool/calculation.py`` (docs/metrics.md §4)
:func:`choice_letter`         LLaVA ``llava/eval/eval_science_qa.py`` (docs/metrics.md §5)
:func:`rec_accuracy`          Shikra ``mllm/dataset/single_image_dataset/rec.py`` (docs/metrics.md §6)
===========================  ==========================================================

All functions are pure, need nothing beyond the standard library, and raise ``ValueError`` (or
``TypeError`` for a wrong type) with a message naming the offending input.
"""
from __future__ import annotations

from genixer.evaluation.metrics.choice import choice_letter
from genixer.evaluation.metrics.mme import (
    MME_CATEGORIES,
    MME_COGNITION,
    MME_PERCEPTION,
    mme_scores,
)
from genixer.evaluation.metrics.pope import pope_metrics
from genixer.evaluation.metrics.rec import parse_box, rec_accuracy
from genixer.evaluation.metrics.vqa import normalize_vqa_answer, vqa_accuracy

__all__ = [
    "MME_CATEGORIES",
    "MME_COGNITION",
    "MME_PERCEPTION",
    "choice_letter",
    "mme_scores",
    "normalize_vqa_answer",
    "parse_box",
    "pope_metrics",
    "rec_accuracy",
    "vqa_accuracy",
]
