"""Multiple-choice letters: LLaVA-1.5's ``eval_science_qa.py`` parsing (docs/metrics.md §5)."""
from __future__ import annotations

import re

from genixer.evaluation.metrics._common import require_str

_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")
_SQA_LETTERS = "ABCDE"  # the fixed --options of eval_science_qa.py


def choice_letter(prediction: str, options: str = "ABCDE") -> str | None:
    """The option letter a multiple-choice answer names, or ``None`` when it names none.

    Matches the ScienceQA parsing of LLaVA ``llava/eval/eval_science_qa.py``; pass as ``options``
    the letters of the question's choices (``"ABC"`` for three choices). Rules, in order:

    1. the whole prediction is one of the letters (``"B"``);
    2. it starts with a letter followed by ``". "`` (``"B. a cat"``);
    3. the regular expression ``The answer is ([A-Z]).`` matches exactly once and its letter is
       an option.

    Quirks kept: nothing is stripped or case-folded (``" B"``, ``"b"``, ``"B."`` and ``"B)"`` give
    ``None``); the ``.`` of rule 3 is any character but a newline, so ``"The answer is B"`` at the
    very end gives ``None`` while ``"The answer is BC"`` gives ``"B"``; two ``The answer is``
    matches give ``None`` even if they agree. A letter outside ``options`` gives ``None`` (the
    official script scores it as wrong); rules 1 and 2 are tried against the script's fixed
    letters ``A``-``E`` first, so with ``options="ABC"`` the answer ``"E. The answer is A."`` gives
    ``None`` (rule 2 claims ``E``), not ``"A"``. For SEED-Bench LLaVA compares the raw text with the
    answer letter, which agrees with rule 1; MMBench is scored by its own server, not reproduced.
    """
    prediction = require_str(prediction, "prediction")
    options = require_str(options, "options")
    letters = tuple(options)
    if not letters or len(set(letters)) != len(letters) or any(not c.isupper() for c in letters):
        raise ValueError(f"options must be distinct upper-case letters, got {options!r}")
    # Rules 1 and 2 look at the script's fixed letters A-E (and ours) before the letter is checked
    # against the question's choices, so a hit on an unavailable letter ends the parse with None.
    claimable = set(letters) | set(_SQA_LETTERS)
    if prediction in claimable:
        return prediction if prediction in letters else None
    if len(prediction) >= 3 and prediction[0] in claimable and prediction[1:3] == ". ":
        return prediction[0] if prediction[0] in letters else None
    found = _ANSWER_IS.findall(prediction)
    if len(found) == 1 and found[0] in letters:
        return found[0]
    return None
