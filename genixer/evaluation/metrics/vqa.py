"""VQA answer normalization and accuracy: EvalAI's answer processor and TextVQA's accuracy, as LLaVA-1.5
scores them (docs/metrics.md §1-2)."""
from __future__ import annotations

import re
from collections.abc import Sequence

from genixer.evaluation.metrics._common import require_str

# Characters the EvalAI processor deletes or turns into a space (``.`` and ``'`` are not here:
# periods have their own rule, apostrophes are kept).
_VQA_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
                    "@", "`", ",", "?", "!")

# A period that is not followed by a digit ("3.5" keeps its period, "yes." loses it).
_VQA_PERIOD = re.compile(r"\.(?!\d)")
# The official code passes ``re.UNICODE`` (== 32) as the positional *count* of ``re.sub``, so at
# most 32 periods are removed. Reproduced on purpose.
_VQA_PERIOD_LIMIT = int(re.UNICODE)

_VQA_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_VQA_ARTICLES = frozenset({"a", "an", "the"})

# The official contraction table as ``written=>replacement`` pairs. Only entries whose key is
# lowercase are listed: the text is lowercased first, so the official keys "Im", "Ive", "Id've"
# and "I'dve" can never match. The official typo "somebody'd" => "somebodyd" is kept.
_VQA_CONTRACTION_PAIRS = """
aint=>ain't arent=>aren't cant=>can't couldve=>could've couldnt=>couldn't couldn'tve=>couldn't've
couldnt've=>couldn't've didnt=>didn't doesnt=>doesn't dont=>don't hadnt=>hadn't hadnt've=>hadn't've
hadn'tve=>hadn't've hasnt=>hasn't havent=>haven't hed=>he'd hed've=>he'd've he'dve=>he'd've hes=>he's
howd=>how'd howll=>how'll hows=>how's isnt=>isn't itd=>it'd itd've=>it'd've it'dve=>it'd've itll=>it'll
let's=>let's maam=>ma'am mightnt=>mightn't mightnt've=>mightn't've mightn'tve=>mightn't've
mightve=>might've mustnt=>mustn't mustve=>must've neednt=>needn't notve=>not've oclock=>o'clock
oughtnt=>oughtn't ow's'at=>'ow's'at 'ows'at=>'ow's'at 'ow'sat=>'ow's'at shant=>shan't
shed've=>she'd've she'dve=>she'd've she's=>she's shouldve=>should've shouldnt=>shouldn't
shouldnt've=>shouldn't've shouldn'tve=>shouldn't've somebody'd=>somebodyd somebodyd've=>somebody'd've
somebody'dve=>somebody'd've somebodyll=>somebody'll somebodys=>somebody's someoned=>someone'd
someoned've=>someone'd've someone'dve=>someone'd've someonell=>someone'll someones=>someone's
somethingd=>something'd somethingd've=>something'd've something'dve=>something'd've
somethingll=>something'll thats=>that's thered=>there'd thered've=>there'd've there'dve=>there'd've
therere=>there're theres=>there's theyd=>they'd theyd've=>they'd've they'dve=>they'd've
theyll=>they'll theyre=>they're theyve=>they've twas=>'twas wasnt=>wasn't wed've=>we'd've
we'dve=>we'd've weve=>we've werent=>weren't whatll=>what'll whatre=>what're whats=>what's
whatve=>what've whens=>when's whered=>where'd wheres=>where's whereve=>where've whod=>who'd
whod've=>who'd've who'dve=>who'd've wholl=>who'll whos=>who's whove=>who've whyll=>why'll
whyre=>why're whys=>why's wont=>won't wouldve=>would've wouldnt=>wouldn't wouldnt've=>wouldn't've
wouldn'tve=>wouldn't've yall=>y'all yall'll=>y'all'll y'allll=>y'all'll yall'd've=>y'all'd've
y'alld've=>y'all'd've y'all'dve=>y'all'd've youd=>you'd youd've=>you'd've you'dve=>you'd've
youll=>you'll youre=>you're youve=>you've
"""
_VQA_CONTRACTIONS = dict(pair.split("=>") for pair in _VQA_CONTRACTION_PAIRS.split())



def normalize_vqa_answer(text: str) -> str:
    """Normalize a VQA answer exactly as EvalAI's answer processor does.

    Matches ``EvalAIAnswerProcessor.__call__`` of LLaVA ``llava/eval/m4c_evaluator.py`` (itself
    from MMF), which LLaVA-1.5 uses for TextVQA scoring and for the VQAv2 / VizWiz submission
    files (``scripts/convert_vqav2_for_submission.py``, ``scripts/convert_vizwiz_for_submission.py``).
    Steps, in the official order:

    1. lowercase; delete every ``,`` and ``?``; ``'s`` becomes ``" 's"`` (``"man's"`` ->
       ``"man 's"``); newlines and tabs become spaces; strip.
    2. punctuation ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``: each character is *deleted*
       when it occurs anywhere in the text next to a space (``"p "`` or ``" p"``), otherwise it
       is *replaced by a space*. The decision is per character, for the whole string:
       ``"t-shirt"`` -> ``"t shirt"`` but ``"t-shirt - red"`` -> ``"tshirt red"``.
    3. delete each ``.`` not followed by a digit (``"3.5"`` keeps its period), at most 32 of
       them (the official code passes ``re.UNICODE`` as ``re.sub``'s count).
    4. split on whitespace; number words ``none``/``zero``..``ten`` -> digits (``none`` -> ``0``);
       drop the articles ``a``, ``an``, ``the``; expand the official contraction list word by word
       (``"dont"`` -> ``"don't"``, ``"isnt"`` -> ``"isn't"``); join with single spaces.

    Quirks kept: apostrophes and colons are never removed; ``"it's"`` becomes ``"it 's"``; the
    official rule that keeps commas between digits never fires because step 1 already deleted
    every comma (``"1,000"`` -> ``"1000"``); contraction keys with capitals (``"Im"``) are dead.
    """
    text = require_str(text, "answer")
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for mark in _VQA_PUNCTUATION:
        spaced = (mark + " ") in text or (" " + mark) in text
        out = out.replace(mark, "" if spaced else " ")
    out = _VQA_PERIOD.sub("", out, count=_VQA_PERIOD_LIMIT)
    words = []
    for word in out.lower().split():
        word = _VQA_NUMBERS.get(word, word)
        if word not in _VQA_ARTICLES:
            words.append(_VQA_CONTRACTIONS.get(word, word))
    return " ".join(words)


# --------------------------------------------------------------------------------------------
# VQA accuracy (docs/metrics.md §2)
# --------------------------------------------------------------------------------------------

def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """VQA soft accuracy of one prediction against the human answers, in [0, 1].

    Matches ``TextVQAAccuracyEvaluator`` of LLaVA ``llava/eval/m4c_evaluator.py`` (used by
    ``llava/eval/eval_textvqa.py``), which is also the VQAv2 / VizWiz server formula: prediction
    and every answer go through :func:`normalize_vqa_answer`; for each answer position ``i`` the
    score is ``min(1, k_i / 3)`` where ``k_i`` counts the *other* answers (leave position ``i``
    out) equal to the prediction; the result is the mean over the positions. With 10 answers, 1,
    2, 3 or >= 4 matches give 0.3, 0.6, 0.9 and 1.0.

    Answer count: the official TextVQA evaluator asserts exactly 10 answers. We apply the same
    leave-one-out mean to any count of at least 2 (that is what the VQA evaluation does, it never
    checks the count). An empty list raises, and so does a single answer: leaving it out leaves
    nothing to match, so every prediction would silently score 0.
    """
    prediction = normalize_vqa_answer(prediction)
    if isinstance(answers, str) or not isinstance(answers, Sequence):
        raise TypeError(f"answers must be a sequence of str, got {type(answers).__name__}")
    if len(answers) == 0:
        raise ValueError("answers is empty: VQA accuracy needs the human answers (10 in VQAv2/VizWiz/TextVQA)")
    if len(answers) == 1:
        raise ValueError("answers has a single entry: the leave-one-out VQA accuracy would be 0 for every "
                         "prediction; use exact match for single-reference benchmarks")
    normalized = [normalize_vqa_answer(require_str(a, f"answers[{i}]")) for i, a in enumerate(answers)]
    matches = sum(answer == prediction for answer in normalized)
    scores = [min(1, float(matches - (answer == prediction)) / 3) for answer in normalized]
    return sum(scores) / len(scores)
