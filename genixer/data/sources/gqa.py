"""GQA balanced questions JSON -> common_vqa records."""
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


class GQA:
    """Reads ``{train,val,...}_balanced_questions.json`` (a dict ``question id -> entry``).

    Images resolve as ``image_root / image_pattern`` where the pattern names the id as
    ``{image_id}`` or ``{imageId}``; sizes come from the image headers. ``full_answer`` takes
    the sentence answer (``fullAnswer``), for long QA.
    """

    def __init__(self, questions: str, image_root: str, image_pattern: str = "{image_id}.jpg",
                 full_answer: bool = False) -> None:
        self.questions, self.image_root = Path(questions), Path(image_root)
        self.image_pattern, self.full_answer = image_pattern, full_answer

    def load(self) -> list[dict]:
        data = read_json(self.questions)
        if not isinstance(data, dict):
            raise AnnotationError(f"{self.questions}: expected an object of question id -> question")
        sizes, records = ImageSizes(), []
        for qid, q in progress(data.items(), self.questions):  # file order is deterministic
            where = f"{self.questions}: question {qid}"
            image_id = field(q, "imageId", where)
            image = image_path(self.image_root, self.image_pattern, where, image_id=image_id, imageId=image_id)
            width, height = sizes(image, where)
            records.append({
                "image": str(image), "width": width, "height": height,
                "image_id": image_id, "question_id": qid,
                "question": field(q, "question", where),
                "answer": field(q, "fullAnswer" if self.full_answer else "answer", where),
            })
        return records
