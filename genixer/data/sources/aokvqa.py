"""A-OKVQA JSON list -> mc_vqa records (optionally also common_vqa records)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from genixer.data.sources.files import (
    AnnotationError,
    ImageSizes,
    field,
    image_path,
    progress,
    read_json,
)


def most_common(answers: list[str]) -> str:
    """The most frequent direct answer; ties go to the one listed first."""
    counts = Counter(answers)
    return max(answers, key=lambda a: counts[a])  # max keeps the first of equal keys


class AOKVQA:
    """Reads ``aokvqa_v1p0_{split}.json``; images as ``image_root / image_pattern`` (COCO 2017 names).

    Each question gives an mc_vqa record {question, choices, answer_index}; with ``also_direct``
    it is followed by a common_vqa record {question, answer = most common direct answer}.
    Records carry ``family`` so a mixed list can be split by task.
    """

    def __init__(self, path: str, image_root: str, image_pattern: str = "{split}2017/{image_id:012d}.jpg",
                 also_direct: bool = False) -> None:
        self.path, self.image_root = Path(path), Path(image_root)
        self.image_pattern, self.also_direct = image_pattern, also_direct

    def load(self) -> list[dict]:
        data = read_json(self.path)
        if not isinstance(data, list):
            raise AnnotationError(f"{self.path}: expected a JSON list of questions")
        sizes, records = ImageSizes(), []
        for i, q in enumerate(progress(data, self.path)):
            where = f"{self.path}: [{i}]"
            image = image_path(self.image_root, self.image_pattern, where,
                               split=field(q, "split", where), image_id=field(q, "image_id", where))
            choices = field(q, "choices", where)
            index = field(q, "correct_choice_idx", where)
            if not (isinstance(choices, list) and 2 <= len(choices) <= 6 and all(isinstance(c, str) for c in choices)):
                raise AnnotationError(f"{where}: field 'choices' must be 2-6 strings, got {choices!r}")
            if not (isinstance(index, int) and 0 <= index < len(choices)):
                raise AnnotationError(f"{where}: field 'correct_choice_idx' {index!r} is not an index into choices")
            width, height = sizes(image, where)
            base = {"image": str(image), "width": width, "height": height,
                    "image_id": q["image_id"], "question_id": field(q, "question_id", where),
                    "question": field(q, "question", where)}
            records.append({**base, "family": "mc_vqa", "choices": list(choices), "answer_index": index})
            if self.also_direct:
                direct = field(q, "direct_answers", where)
                if not (isinstance(direct, list) and direct):
                    raise AnnotationError(f"{where}: field 'direct_answers' must be a non-empty list")
                records.append({**base, "family": "common_vqa", "answer": most_common(direct)})
        return records
