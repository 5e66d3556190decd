"""Per-image language of the text-only families: GQA questions, A-OKVQA multiple choice, LLaVA detail."""

from __future__ import annotations

from typing import Any

import numpy as np

from .language import NUMBER_WORDS, make_question, make_questions
from .longform import GQA_TYPES, long_answer, rationales
from .scene import COLORS, SHAPES, Scene

MC_TYPES = ("color", "shape", "count")  # types with >= 4 answers of the same kind
MAX_COUNT_CHOICE = 6


def gqa_questions(scene: Scene, rng: np.random.Generator) -> list[dict[str, Any]]:
    """2-3 questions with short and full answers and GQA types."""
    out = []
    for qa in make_questions(scene, rng, 2, 3):
        structural, semantic, detailed = GQA_TYPES[qa.qtype]
        if qa.qtype == "size" and " or " in qa.question:
            structural, detailed = "choose", "chooseSize"
        out.append({
            "question": qa.question, "answer": qa.answer, "fullAnswer": long_answer(qa.question, qa.answer),
            "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
        })
    return out


def _distractors(qtype: str, truth: str, rng: np.random.Generator) -> list[str]:
    """Three wrong answers of the same kind as `truth`."""
    if qtype == "count":
        pool = [str(n) for n in range(MAX_COUNT_CHOICE + 1) if str(n) != truth]
    else:
        pool = [v for v in (COLORS if qtype == "color" else SHAPES) if v != truth]
    return [pool[int(i)] for i in rng.permutation(len(pool))[:3]]


def aokvqa_question(scene: Scene, rng: np.random.Generator) -> dict[str, Any] | None:
    """One multiple-choice question (colour, shape or count) with 4 choices, 10 direct answers, 3 rationales."""
    for k in rng.permutation(len(MC_TYPES)):
        qa = make_question(scene, rng, MC_TYPES[int(k)])
        if qa is not None:
            break
    else:
        return None
    choices = [qa.answer, *_distractors(qa.qtype, qa.answer, rng)]
    order = [int(i) for i in rng.permutation(4)]
    choices = [choices[i] for i in order]
    direct = [qa.answer] * 10
    if qa.qtype == "count":  # a few annotators spell the number out
        for slot in rng.permutation(10)[: int(rng.integers(0, 4))]:
            direct[int(slot)] = NUMBER_WORDS[int(qa.answer)]
    return {
        "question": qa.question, "qtype": qa.qtype, "choices": choices, "correct_choice_idx": order.index(0),
        "direct_answers": direct, "rationales": rationales(qa.question, qa.answer),
    }


def detail_conversation(scene: Scene, rng: np.random.Generator) -> list[dict[str, str]]:
    """LLaVA turns with sentence answers: 'What color is the small star?' -> 'The small star is red.'."""
    conv = []
    for j, qa in enumerate(make_questions(scene, rng, 2, 3)):
        conv.append({"from": "human", "value": ("<image>\n" if j == 0 else "") + qa.question})
        conv.append({"from": "gpt", "value": long_answer(qa.question, qa.answer)})
    return conv
