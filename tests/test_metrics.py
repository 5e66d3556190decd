"""Benchmark metrics (genixer.evaluation.metrics, docs/metrics.md §1-6): hand-computed values,
official quirks reproduced on purpose, and clear errors on bad input."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest

from genixer.evaluation.metrics import (
    MME_COGNITION,
    MME_PERCEPTION,
    choice_letter,
    mme_scores,
    normalize_vqa_answer,
    pope_metrics,
    rec_accuracy,
    vqa_accuracy,
)


def equals(value: float, expected: Fraction | int) -> bool:
    """``value`` is the float nearest the exact fraction (up to rounding of the float arithmetic)."""
    return math.isclose(value, float(expected), rel_tol=1e-12, abs_tol=1e-15)


# ------------------------------------------------------------------ normalize_vqa_answer (§1)

@pytest.mark.parametrize("raw,expected", [
    ("Yes.", "yes"),                              # trailing period, case
    ("yes", "yes"),
    ("Two dogs", "2 dogs"),                       # number words
    ("none", "0"),                                # "none" counts as zero
    ("an apple, the pear", "apple pear"),         # articles and commas
    ("dont", "don't"),                            # official contraction list
    ("isnt it", "isn't it"),
    ("won't", "won't"),                           # apostrophes are kept
    ("somebody'd", "somebodyd"),                  # typo in the official list, kept
    ("Im here", "im here"),                       # capitalised keys never match after lowercasing
    ("the cat's toy", "cat 's toy"),              # "'s" is split off
    ("It's 10 o'clock.", "it 's 10 o'clock"),
    ("3.5", "3.5"),                               # period before a digit is kept
    ("a.b", "ab"),                                # other periods are deleted
    ("1,000", "1000"),                            # commas are deleted first
    ("1.2.3.", "1.2.3"),
    ("." * 33, "."),                              # at most 32 periods are deleted
    ("t-shirt", "t shirt"),                       # punctuation not next to a space -> space
    ("t-shirt - red", "tshirt red"),              # "-" next to a space somewhere -> deleted everywhere
    ("(yes)", "yes"),
    ("hello?!", "hello"),
    ("yes!no", "yes no"),
    ("a/b", "b"),                                 # "/" -> space, then "a" is an article
    ("  A  Dog\n", "dog"),
    ("", ""),
])
def test_normalize_vqa_answer(raw, expected):
    assert normalize_vqa_answer(raw) == expected


def test_normalize_rejects_non_str():
    with pytest.raises(TypeError, match="answer must be a str"):
        normalize_vqa_answer(3)


# ------------------------------------------------------------------ vqa_accuracy (§2)

@pytest.mark.parametrize("matches,expected", [
    (0, Fraction(0)), (1, Fraction(3, 10)), (2, Fraction(6, 10)), (3, Fraction(9, 10)), (4, Fraction(1)),
    (10, Fraction(1)),
])
def test_vqa_accuracy_ten_answers(matches, expected):
    answers = ["two"] * matches + ["three"] * (10 - matches)
    assert equals(vqa_accuracy("2", answers), expected)      # "two" and "2" normalize alike


def test_vqa_accuracy_normalizes_both_sides():
    answers = ["don't"] * 2 + ["no"] * 8
    assert equals(vqa_accuracy("Dont.", answers), Fraction(6, 10))
    assert vqa_accuracy("Yes.", ["yes"] * 10) == 1.0
    assert vqa_accuracy("A dog!", ["dog"] * 10) == 1.0


def test_vqa_accuracy_empty_prediction():
    assert vqa_accuracy("", ["yes"] * 10) == 0.0
    assert equals(vqa_accuracy(".", [""] * 3 + ["x"] * 7), Fraction(9, 10))   # "." normalizes to ""


def test_vqa_accuracy_other_answer_counts():
    # 5 answers, 2 match: the 2 matching positions see 1 other match (1/3), the 3 others see 2 (2/3).
    assert equals(vqa_accuracy("cat", ["cat", "cat", "dog", "dog", "dog"]), Fraction(8, 15))
    # 2 answers, both match: each position sees 1 other match.
    assert equals(vqa_accuracy("cat", ["cat", "cat"]), Fraction(1, 3))


def test_vqa_accuracy_errors():
    with pytest.raises(ValueError, match="answers is empty"):
        vqa_accuracy("yes", [])
    with pytest.raises(ValueError, match="single entry"):
        vqa_accuracy("yes", ["yes"])
    with pytest.raises(TypeError, match="sequence of str"):
        vqa_accuracy("yes", "yes")
    with pytest.raises(TypeError, match=r"answers\[1\]"):
        vqa_accuracy("yes", ["yes", None])


# ------------------------------------------------------------------ pope_metrics (§3)

def test_pope_metrics_mixed():
    predictions = ["Yes.", "No, there is not.", "yes", "NO", "There is no cat.", "Yes, there is no dog."]
    labels = ["yes", "no", "yes", "no", "no", "yes"]
    # read as: yes, no, yes, yes ("NO" is not "No"/"no"), no, no ("no" in the first sentence)
    m = pope_metrics(predictions, labels)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 2, 1)
    assert equals(m["accuracy"], Fraction(2, 3))
    assert equals(m["precision"], Fraction(2, 3))
    assert equals(m["recall"], Fraction(2, 3))
    assert equals(m["f1"], Fraction(2, 3))
    assert m["yes_ratio"] == 0.5


def test_pope_all_yes_precision_is_defined():
    m = pope_metrics(["Yes"] * 4, ["yes", "no", "no", "yes"])
    assert (m["accuracy"], m["precision"], m["recall"], m["yes_ratio"]) == (0.5, 0.5, 1.0, 1.0)
    assert equals(m["f1"], Fraction(2, 3))


def test_pope_all_no_gives_zero_where_official_divides_by_zero():
    m = pope_metrics(["No.", "no"], ["yes", "no"])
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"], m["yes_ratio"]) == (0.5, 0.0, 0.0, 0.0, 0.0)
    m = pope_metrics(["yes"], ["no"])                       # no "yes" label: recall undefined -> 0
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("text,said_yes", [
    ("Yes", True), ("Yes.", True), ("No", False), ("No.", False), ("no", False),
    ("There is not a cat", False), ("NO", True), ("Nope", True), ("", True),
    ("No\nthere is none", True),                   # split on " " only: the word is "No\nthere"
    ("Yes. No.", True),                            # only the first sentence counts
    ("not,", False),                               # commas are removed before splitting
])
def test_pope_answer_reading(text, said_yes):
    assert pope_metrics([text], ["yes"])["yes_ratio"] == (1.0 if said_yes else 0.0)


def test_pope_errors():
    with pytest.raises(ValueError, match="length mismatch: 2 predictions but 1 labels"):
        pope_metrics(["yes", "no"], ["yes"])
    with pytest.raises(ValueError, match="no predictions"):
        pope_metrics([], [])
    with pytest.raises(ValueError, match=r"labels\[0\] is 'Yes'"):
        pope_metrics(["yes"], ["Yes"])


# ------------------------------------------------------------------ mme_scores (§4)

def rec(category, image, answer, prediction):
    return {"category": category, "image": image, "answer": answer, "prediction": prediction}


def test_mme_scores():
    records = [
        rec("existence", "1.jpg", "Yes", "Yes"), rec("existence", "1.jpg", "No", "No"),       # both right
        rec("existence", "2.jpg", "yes", "yes"), rec("existence", "2.jpg", "no", "yes"),      # one right
        rec("OCR", "a.jpg", "yes", "Not sure"),        # "not " holds "no" -> no: wrong
        rec("OCR", "a.jpg", "no", "none"),             # -> no: right
        rec("count", "1.jpg", "yes", "  yes"),         # first 4 chars "  ye": other, wrong
        rec("count", "1.jpg", "no", "nope"),           # -> no: right
        rec("code_reasoning", "c.png", "yes", "yesterday"),     # -> yes: right
        rec("code_reasoning", "c.png", "no", "I think no"),     # "i th": other, wrong
    ]
    out = mme_scores(records)
    assert list(out["categories"]) == ["existence", "count", "OCR", "code_reasoning"]   # MME's order
    assert out["categories"]["existence"] == {"acc": 0.75, "acc_plus": 0.5, "score": 125.0}
    for name in ("OCR", "count", "code_reasoning"):
        assert out["categories"][name] == {"acc": 0.5, "acc_plus": 0.0, "score": 50.0}
    assert out["perception"] == 225.0
    assert out["cognition"] == 50.0


def test_mme_acc_plus_needs_both_questions_of_an_image():
    records = [rec("color", "x.jpg", "yes", "Yes, it is."), rec("color", "x.jpg", "no", "Yes"),
               rec("color", "y.jpg", "yes", "No"), rec("color", "y.jpg", "no", "Yes"),
               rec("color", "z.jpg", "yes", "yes"), rec("color", "z.jpg", "no", "no")]
    out = mme_scores(records)
    assert equals(out["categories"]["color"]["acc"], Fraction(1, 2))       # 3 of 6 questions
    assert equals(out["categories"]["color"]["acc_plus"], Fraction(1, 3))  # only z.jpg has both right
    assert equals(out["categories"]["color"]["score"], Fraction(50) + Fraction(100, 3))
    assert out["cognition"] == 0.0


def test_mme_same_image_name_in_two_categories_is_two_images():
    records = [rec("scene", "1.jpg", "yes", "yes"), rec("scene", "1.jpg", "no", "no"),
               rec("artwork", "1.jpg", "yes", "no"), rec("artwork", "1.jpg", "no", "no")]
    out = mme_scores(records)
    assert out["categories"]["scene"]["score"] == 200.0
    assert out["categories"]["artwork"]["score"] == 50.0
    assert out["perception"] == 250.0


def test_mme_category_split():
    assert len(MME_PERCEPTION) == 10 and len(MME_COGNITION) == 4
    assert "OCR" in MME_PERCEPTION and "text_translation" in MME_COGNITION


def test_mme_errors():
    pair = [rec("scene", "1.jpg", "yes", "yes"), rec("scene", "1.jpg", "no", "no")]
    with pytest.raises(ValueError, match="unknown MME category 'ocr'"):
        mme_scores([rec("ocr", "1.jpg", "yes", "yes")])
    with pytest.raises(ValueError, match="MME answers are yes or no"):
        mme_scores([rec("scene", "1.jpg", "maybe", "yes")])
    with pytest.raises(ValueError, match="has 3"):
        mme_scores(pair + [rec("scene", "1.jpg", "no", "no")])
    with pytest.raises(ValueError, match="has 1"):
        mme_scores(pair[:1])
    with pytest.raises(ValueError, match="no MME records"):
        mme_scores([])
    with pytest.raises(ValueError, match=r"records\[0\] lacks prediction"):
        mme_scores([{"category": "scene", "image": "1.jpg", "answer": "yes"}])


# ------------------------------------------------------------------ choice_letter (§5)

@pytest.mark.parametrize("prediction,options,expected", [
    ("A", "ABCDE", "A"),
    ("B. a cat", "ABCDE", "B"),
    ("The answer is C.", "ABCDE", "C"),
    ("Because ... The answer is D.\n", "ABCDE", "D"),
    ("The answer is C", "ABCDE", None),          # the "." of the pattern needs one more character
    ("The answer is CD", "ABCDE", "C"),          # ... any character
    ("The answer is A. The answer is A.", "ABCDE", None),   # two matches
    ("the answer is a.", "ABCDE", None),
    ("b", "ABCDE", None), (" A", "ABCDE", None), ("A.", "ABCDE", None), ("A)", "ABCDE", None),
    ("", "ABCDE", None), ("F", "ABCDE", None),
    ("C. x\nThe answer is A.", "ABCDE", "C"),    # rule 2 before rule 3
    ("D", "ABC", None),                          # not one of the question's choices
    ("The answer is D.", "ABC", None),
    ("E. The answer is A.", "ABC", None),        # rule 2 claims E (fixed A-E) before rule 3
    ("F. The answer is B.", "ABC", "B"),         # F is not one of the script's letters
])
def test_choice_letter(prediction, options, expected):
    assert choice_letter(prediction, options) == expected


def test_choice_letter_default_options_and_errors():
    assert choice_letter("E") == "E"
    for bad in ("", "AAB", "abc", "A1"):
        with pytest.raises(ValueError, match="distinct upper-case letters"):
            choice_letter("A", bad)
    with pytest.raises(TypeError, match="prediction must be a str"):
        choice_letter(None)


# ------------------------------------------------------------------ rec_accuracy (§6)

def test_rec_accuracy():
    predictions = ["[0.0,0.0,0.5,1.0]",                  # IoU exactly 0.5: a miss (strict >)
                   "Answer: [0.0, 0.0, 1.0, 1.0] .",     # spaces inside brackets: IoU 1
                   "0.25 0.25 0.75 0.75",                # no brackets: IoU 1
                   "I cannot find it.",                  # no box: failed, IoU 0
                   "[0.5,0.5,0.5,0.5]"]                  # degenerate (zero area): IoU 0
    targets = [[0, 0, 1, 1], [0, 0, 1, 1], [0.25, 0.25, 0.75, 0.75], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert rec_accuracy(predictions, targets) == {"accuracy": 0.4, "miou": 0.5, "failed": 1}


@pytest.mark.parametrize("prediction,target,iou", [
    ("[0.0,0.0,0.75,1.0]", [0, 0, 1, 1], Fraction(3, 4)),
    ("[0.5,0,1,1]", [0, 0, 0.75, 1], Fraction(1, 4)),
    ("(0, 0, 0.5, 0.5)", [0.25, 0.25, 0.75, 0.75], Fraction(1, 7)),
    ("[0.100,0.200,0.300,0.400]", [0.1, 0.2, 0.3, 0.4], Fraction(1)),
    ("0.1,0.2,0.3,0.4.", [0.1, 0.2, 0.3, 0.4], Fraction(1)),     # trailing sentence period
    ("[0.6,0.6,0.2,0.2]", [0, 0, 1, 1], Fraction(0)),            # inverted box: area 0
    ("[0.2,0.2,0.2,0.4]", [0.2, 0.2, 0.2, 0.4], Fraction(0)),    # both degenerate: union 0 -> 0
])
def test_rec_iou(prediction, target, iou):
    out = rec_accuracy([prediction], [target])
    assert out["failed"] == 0
    assert equals(out["miou"], iou)
    assert out["accuracy"] == (1.0 if iou > Fraction(1, 2) else 0.0)


@pytest.mark.parametrize("prediction", [
    "no box", "[0.1,0.2,0.3]", "[0.1,0.2,0.3,0.4,0.5]",
    "[0.1,0.1,0.2,0.2] and [0.3,0.3,0.4,0.4]",                 # two boxes: failed, as in Shikra
    "[0.1,0.1,0.2,0.2;0.3,0.3,0.4,0.4]",
    "[-0.1,0.2,0.3,0.4]",                                      # a sign breaks the run
])
def test_rec_failed(prediction):
    assert rec_accuracy([prediction], [[0.1, 0.2, 0.3, 0.4]]) == {"accuracy": 0.0, "miou": 0.0, "failed": 1}


def test_rec_errors():
    with pytest.raises(ValueError, match="length mismatch: 1 predictions but 2 targets"):
        rec_accuracy(["[0,0,1,1]"], [[0, 0, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(ValueError, match="no predictions"):
        rec_accuracy([], [])
    for bad in ([0, 0, 2, 2], [0.5, 0, 0.4, 1], [0, 0, 1], [0, 0, float("nan"), 1], "0,0,1,1"):
        with pytest.raises(ValueError, match=r"targets\[0\]"):
            rec_accuracy(["[0,0,1,1]"], [bad])
