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

import math
import re
from collections.abc import Iterable, Mapping, Sequence

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

# --------------------------------------------------------------------------------------------
# VQA answer normalization (docs/metrics.md §1)
# --------------------------------------------------------------------------------------------

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


def _require_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}: {value!r}")
    return value


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
    text = _require_str(text, "answer")
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
    normalized = [normalize_vqa_answer(_require_str(a, f"answers[{i}]")) for i, a in enumerate(answers)]
    matches = sum(answer == prediction for answer in normalized)
    scores = [min(1, float(matches - (answer == prediction)) / 3) for answer in normalized]
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------------------------
# POPE (docs/metrics.md §3)
# --------------------------------------------------------------------------------------------

def _pope_answer(text: str) -> str:
    """LLaVA-1.5's POPE reading of a free-form answer: ``"yes"`` or ``"no"``."""
    first_sentence = text.split(".")[0]
    words = first_sentence.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def _check_lengths(predictions: Sequence, labels: Sequence, what: str) -> None:
    for name, seq in (("predictions", predictions), (what, labels)):
        if isinstance(seq, str) or not isinstance(seq, Sequence):
            raise TypeError(f"{name} must be a sequence, got {type(seq).__name__}")
    if len(predictions) != len(labels):
        raise ValueError(f"length mismatch: {len(predictions)} predictions but {len(labels)} {what}")
    if len(predictions) == 0:
        raise ValueError("no predictions: the metric is undefined on an empty set")


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def pope_metrics(predictions: Sequence[str], labels: Sequence[str]) -> dict:
    """POPE accuracy, precision, recall, F1 and yes-ratio, "yes" being the positive class.

    Matches ``eval_pope`` of LLaVA ``llava/eval/eval_pope.py``. A prediction is read as "no" when,
    after cutting it at its first ``.`` and deleting commas, one of its *space-separated* words is
    exactly ``No``, ``no`` or ``not``; anything else is "yes". Quirks kept: ``"NO"``, ``"Nope"``
    and ``"No\\nthere is none"`` (newline, not space) read as "yes"; ``"Yes, there is no dog"``
    reads as "no"; an empty answer reads as "yes". Call once per POPE split (random / popular /
    adversarial): the official script reports each split separately.

    Labels must be ``"yes"`` or ``"no"`` (the official script maps anything but ``"no"`` to yes;
    we reject other values instead). Where the official script divides by zero (no "yes"
    predictions -> precision; no "yes" labels -> recall; precision + recall = 0 -> F1) the value
    is 0.0 here. With all-"yes" predictions precision is defined: the share of "yes" labels.

    Returns ``accuracy``, ``precision``, ``recall``, ``f1``, ``yes_ratio`` (floats) and the counts
    ``tp``, ``fp``, ``tn``, ``fn``.
    """
    _check_lengths(predictions, labels, "labels")
    tp = fp = tn = fn = 0
    for i, (prediction, label) in enumerate(zip(predictions, labels)):
        said_yes = _pope_answer(_require_str(prediction, f"predictions[{i}]")) == "yes"
        if label not in ("yes", "no"):
            raise ValueError(f"labels[{i}] is {label!r}: POPE labels are 'yes' or 'no'")
        is_yes = label == "yes"
        tp += said_yes and is_yes
        fp += said_yes and not is_yes
        tn += (not said_yes) and (not is_yes)
        fn += (not said_yes) and is_yes
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = tp + fp + tn + fn
    return {"accuracy": (tp + tn) / total, "precision": precision, "recall": recall, "f1": f1,
            "yes_ratio": (tp + fp) / total, "tp": tp, "fp": fp, "tn": tn, "fn": fn}


# --------------------------------------------------------------------------------------------
# MME (docs/metrics.md §4)
# --------------------------------------------------------------------------------------------

MME_PERCEPTION: tuple[str, ...] = ("existence", "count", "position", "color", "posters", "celebrity",
                                   "scene", "landmark", "artwork", "OCR")
MME_COGNITION: tuple[str, ...] = ("commonsense_reasoning", "numerical_calculation", "text_translation",
                                  "code_reasoning")
MME_CATEGORIES: tuple[str, ...] = MME_PERCEPTION + MME_COGNITION


def _mme_answer(text: str) -> str:
    """MME's reading of a prediction: ``"yes"``, ``"no"`` or ``"other"``."""
    text = text.lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def mme_scores(records: Iterable[Mapping]) -> dict:
    """MME scores: per category ``acc``, ``acc_plus`` and ``score``, and the two totals.

    Matches ``calculate_metrics.process_result`` of MME's ``eval_tool/calculation.py`` (run by
    LLaVA ``scripts/v1_5/eval/mme.sh``). Each record has ``category`` (one of
    :data:`MME_CATEGORIES`, MME's names: ``"OCR"`` is upper case), ``image``, ``answer``
    (``yes``/``no``, any case) and ``prediction``. The prediction is lowercased (not stripped);
    exactly ``yes``/``no`` is taken as is, otherwise its first 4 characters decide: containing
    ``yes`` -> yes, else containing ``no`` -> no, else "other" (always wrong). Quirks kept:
    ``"Not sure"``, ``"none"`` and ``"nope"`` read as no; ``"I think yes"`` and ``"  yes"`` (two
    leading spaces) read as other; ``"yesterday"`` reads as yes.

    ``acc`` = share of a category's questions answered right; ``acc_plus`` = share of its images
    with *both* questions right; ``score`` = ``acc * 100 + acc_plus * 100`` (max 200).
    ``perception`` sums the scores of the 10 perception categories, ``cognition`` those of the 4
    cognition ones, in MME's order (max 2000 and 800).

    Differences: the official tool pairs consecutive lines of a category file; we pair records by
    ``(category, image)`` and require exactly 2 per image. The official tool needs every category
    file; we score the categories present and the totals sum over those (0.0 when none), so a
    partial run gives partial totals.

    Returns ``{"categories": {name: {"acc", "acc_plus", "score"}}, "perception", "cognition"}``.
    """
    if isinstance(records, (str, bytes, Mapping)):
        raise TypeError("records must be an iterable of mappings (one per question)")
    per_image: dict[str, dict[str, list[bool]]] = {}
    count = 0
    for i, record in enumerate(records):
        count += 1
        if not isinstance(record, Mapping):
            raise TypeError(f"records[{i}] must be a mapping, got {type(record).__name__}")
        missing = [key for key in ("category", "image", "answer", "prediction") if key not in record]
        if missing:
            raise ValueError(f"records[{i}] lacks {', '.join(missing)}")
        category = record["category"]
        if category not in MME_CATEGORIES:
            raise ValueError(f"records[{i}] has unknown MME category {category!r}; "
                             f"known: {', '.join(MME_CATEGORIES)}")
        answer = _require_str(record["answer"], f"records[{i}]['answer']").lower()
        if answer not in ("yes", "no"):
            raise ValueError(f"records[{i}] has answer {record['answer']!r}: MME answers are yes or no")
        prediction = _require_str(record["prediction"], f"records[{i}]['prediction']")
        image = record["image"]
        per_image.setdefault(category, {}).setdefault(str(image), []).append(_mme_answer(prediction) == answer)
    if count == 0:
        raise ValueError("no MME records")
    categories: dict[str, dict[str, float]] = {}
    for category in MME_CATEGORIES:
        images = per_image.get(category)
        if not images:
            continue
        odd = [image for image, results in images.items() if len(results) != 2]
        if odd:
            raise ValueError(f"MME has 2 questions per image; category {category!r} image {odd[0]!r} "
                             f"has {len(images[odd[0]])}")
        results = [ok for pair in images.values() for ok in pair]
        acc = sum(results) / len(results)
        acc_plus = sum(all(pair) for pair in images.values()) / len(images)
        categories[category] = {"acc": acc, "acc_plus": acc_plus, "score": acc * 100 + acc_plus * 100}
    totals = {group: sum((categories[c]["score"] for c in names if c in categories), 0.0)
              for group, names in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION))}
    return {"categories": categories, **totals}


# --------------------------------------------------------------------------------------------
# Multiple-choice letters (docs/metrics.md §5)
# --------------------------------------------------------------------------------------------

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
    prediction = _require_str(prediction, "prediction")
    options = _require_str(options, "options")
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


# --------------------------------------------------------------------------------------------
# REC (docs/metrics.md §6)
# --------------------------------------------------------------------------------------------

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# A maximal run of unsigned numbers separated by a comma and/or whitespace; a number glued to a
# letter, a period or a sign ("x1", "bin_3", "-0.1") does not start a run.
_NUMBER_RUN = re.compile(rf"(?<![\w.+-]){_NUMBER}(?:(?:\s*,\s*|\s+){_NUMBER})*")


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """The one box ``x1,y1,x2,y2`` in ``text`` (brackets optional) as :func:`rec_accuracy` reads it, or None."""
    runs = [run for run in _NUMBER_RUN.findall(text) if len(re.findall(_NUMBER, run)) == 4]
    if len(runs) != 1:
        return None
    x1, y1, x2, y2 = (float(v) for v in re.findall(_NUMBER, runs[0]))
    return x1, y1, x2, y2


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _check_target(target: Sequence[float], i: int) -> tuple[float, float, float, float]:
    if isinstance(target, str) or not isinstance(target, Sequence) or len(target) != 4:
        raise ValueError(f"targets[{i}] must be 4 numbers [x1, y1, x2, y2], got {target!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in target):
        raise ValueError(f"targets[{i}] must hold finite numbers, got {target!r}")
    x1, y1, x2, y2 = (float(v) for v in target)
    if not (0.0 <= x1 <= x2 <= 1.0 and 0.0 <= y1 <= y2 <= 1.0):
        raise ValueError(f"targets[{i}] must be a normalized box with 0 <= x1 <= x2 <= 1 and "
                         f"0 <= y1 <= y2 <= 1, got {target!r}")
    return x1, y1, x2, y2


def rec_accuracy(predictions: Sequence[str], targets: Sequence[Sequence[float]]) -> dict:
    """Referring-expression comprehension: Acc@0.5, mean IoU and the count of unparseable answers.

    Matches ``RECComputeMetrics.calculate_metric`` of Shikra
    ``mllm/dataset/single_image_dataset/rec.py``. Boxes are normalized ``[x1, y1, x2, y2]``. A
    prediction is correct when its IoU with the target is *strictly* greater than 0.5 (Shikra's
    ``ious > 0.5``: IoU exactly 0.5 is a miss). A prediction with no box, or with more than one
    box, is ``failed`` and counts as IoU 0 in both ``accuracy`` and ``miou`` (Shikra substitutes
    ``[0, 0, 0, 0]``); both are means over *all* predictions.

    Differences, all on inputs Shikra cannot score: Shikra only reads ``[d.ddd,d.ddd,d.ddd,d.ddd]``
    (brackets, no spaces); we read the one run of exactly four unsigned numbers separated by
    commas and/or spaces, brackets optional (``"[0.1, 0.2, 0.3, 0.4]"``, ``"0.1 0.2 0.3 0.4"``),
    and a run of 3 or 5 numbers is not a box. IoU is computed in float64 without Shikra's x1000
    scaling; a degenerate or inverted box has area 0, and a zero union gives IoU 0 (torchvision
    gives NaN). Targets must be valid normalized boxes.

    Returns ``accuracy``, ``miou`` (floats) and ``failed`` (int).
    """
    _check_lengths(predictions, targets, "targets")
    ious, failed = [], 0
    for i, (prediction, target) in enumerate(zip(predictions, targets)):
        box = _check_target(target, i)
        parsed = parse_box(_require_str(prediction, f"predictions[{i}]"))
        if parsed is None:
            failed += 1
            ious.append(0.0)
        else:
            ious.append(_iou(parsed, box))
    return {"accuracy": sum(iou > 0.5 for iou in ious) / len(ious), "miou": sum(ious) / len(ious),
            "failed": failed}
