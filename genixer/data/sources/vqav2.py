"""VQAv2: official questions + annotations JSON -> question/answer annotations."""
from __future__ import annotations

from pathlib import Path

from genixer.data.sources.files import (
    AnnotationError,
    ImageSizes,
    field,
    image_path,
    progress,
    read_json,
)


class VQAv2:
    """Reads ``v2_OpenEnded_*_questions.json`` and ``v2_*_annotations.json``.

    Images resolve as ``image_root / image_pattern.format(image_id=...)`` (COCO naming by
    default); sizes come from the image headers. The answer is the annotation's
    ``multiple_choice_answer``.
    """

    def __init__(
        self, questions: str, annotations: str, image_root: str,
        image_pattern: str = "COCO_train2014_{image_id:012d}.jpg",
    ) -> None:
        self.questions, self.annotations = Path(questions), Path(annotations)
        self.image_root, self.image_pattern = Path(image_root), image_pattern

    def load(self) -> list[dict]:
        questions = field(read_json(self.questions), "questions", str(self.questions))
        answers = {}
        for i, ann in enumerate(field(read_json(self.annotations), "annotations", str(self.annotations))):
            where = f"{self.annotations}: annotations[{i}]"
            answers[field(ann, "question_id", where)] = ann
        sizes, records = ImageSizes(), []
        for i, q in enumerate(progress(questions, self.questions)):
            where = f"{self.questions}: questions[{i}]"
            qid = field(q, "question_id", where)
            if qid not in answers:
                raise AnnotationError(f"{self.annotations}: no annotation for question_id {qid}")
            ann = answers[qid]
            image_id = field(q, "image_id", where)
            image = image_path(self.image_root, self.image_pattern, where, image_id=image_id)
            width, height = sizes(image, where)
            records.append({
                "image": str(image), "width": width, "height": height,
                "image_id": image_id,
                "question": field(q, "question", where),
                "answer": field(ann, "multiple_choice_answer", f"{self.annotations}: question_id {qid}"),
                "question_type": ann.get("question_type"),
            })
        return records
