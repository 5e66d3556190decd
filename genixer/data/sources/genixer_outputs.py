"""The original Genixer_L's generation and Fuyu-filter outputs -> our generation rows (``samples.jsonl``).

* Generation (``model_genixer_eval.py``): ``{"question_id", "image", "text", "prompt", "answer_id",
  "model_id", "metadata"}``, ``text`` the generated ``Question: ... Answer: ...``.
* Fuyu filter (``GenQA_filtering_mp.py``): ``{"question_id", "image_path", "question", "answer",
  "fuyu8b_results", "probability", "feedback"}``, one judged pair per row.

``image`` / ``image_path`` are relative to the image folder the original ran on (its ``--image-folder`` /
``--imagebasedir``). Each row becomes a row as our generation stage merges it: ``task`` parses the text
and writes the typed fields (``qa_pairs`` for a judge, ``regions`` for CLIP, ``conversations`` for the
exports); a text the task cannot parse is a ``rejected`` row with the task's reason, as in our runs.
The sample id is ``<question_id>/<task>/0``; a repeated question_id is counted and left out.
"""
from __future__ import annotations

from genixer.data.sources.files import AnnotationError, ImageSizes
from genixer.data.sources.lenient import LenientJsonl, Malformed, identifier, number, text
from genixer.generation.records import finish_row
from genixer.tasks.base import Task, format_qa

FUYU = "fuyu8b"   # the key of the released Fuyu verdicts in a row's ``released_scores``


class GenixerOutputs(LenientJsonl):
    """Genixer_L generation outputs read as our generation rows, parsed by ``task`` (the task the original
    ran: ``common`` -> common_vqa, ``Adv`` -> adv_vqa, ``MC`` -> mc_vqa, ``MD`` -> md, ``generic`` -> agnostic)."""

    def __init__(self, path: str, image_root: str, task: Task) -> None:
        super().__init__(path, image_root)
        self.task = task
        self.ids: set[str] = set()
        self.sizes = ImageSizes()

    def load(self) -> list[dict]:
        self.ids = set()
        return super().load()

    def record(self, row: dict) -> dict:
        prompt = row.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise Malformed("field 'prompt' not a string")
        model = row.get("model_id")
        provenance = {"generator": model if isinstance(model, str) else None, "released": self.path.name}
        return self.generated(identifier(row, "question_id"), text(row, "image"), text(row, "text", empty=True),
                              prompt, provenance)

    def generated(self, question_id: str, image: str, generated: str, instruction: str | None, provenance: dict) -> dict:
        """One generation row: parsed by the task, as our generation stage merges it."""
        sample_id = f"{question_id}/{self.task.name}/0"
        if sample_id in self.ids:
            raise Malformed("duplicate question_id")
        self.ids.add(sample_id)
        row = {"id": sample_id, "image_id": question_id, "image": image, "task": self.task.name,
               "template_id": None, "instruction": instruction, "text": generated}
        row = finish_row(row, self.task, provenance)
        if row["status"] == "ok" and row["regions"]:  # pixel boxes in the exports need the image size
            try:
                row["width"], row["height"] = self.sizes(self.image_root / image, sample_id)
            except AnnotationError as err:
                row = {**row, "status": "error", "reason": f"image: {err}"}
        return row


def fuyu_verdict(answer: str) -> str | None:
    """Fuyu's verdict, Yes or No, from its sampled answer (the first word); None when it said neither."""
    words = answer.strip().split()
    first = words[0].strip(".,!:;").lower() if words else ""
    return {"yes": "Yes", "no": "No"}.get(first)


def fuyu_scores(answer: str, probability: float, feedback: object) -> dict:
    """A released Fuyu verdict in our judge's annotation shape (one pair).

    The original's ``probability`` is its confidence in whatever it answered (docs/original.md §4), so
    ``p_yes`` is that number after a Yes and one minus it after a No: an approximation of our judge's
    P(Yes), not the same measurement. The released numbers are kept beside it.
    """
    released = {"fuyu8b_results": [answer], "probability": [probability], "feedback": [feedback]}
    verdict = fuyu_verdict(answer)
    if verdict is None:
        return {**released, "status": "rejected", "reason": "Fuyu answered neither Yes nor No"}
    p_yes = probability if verdict == "Yes" else 1.0 - probability
    return {**released, "p_yes": [p_yes], "verdict": [verdict], "p_yes_min": p_yes, "pairs": 1}


class FuyuOutputs(GenixerOutputs):
    """Fuyu-filter output rows read as generation rows (``Question: {question} Answer: {answer}`` parsed by
    ``task``, common_vqa for the released single pairs), each with its Fuyu verdict in
    ``released_scores["fuyu8b"]`` (``fuyu_scores``)."""

    def record(self, row: dict) -> dict:
        probability = number(row, "probability")
        if not 0.0 <= probability <= 1.0:
            raise Malformed("field 'probability' outside [0, 1]")
        answer = text(row, "fuyu8b_results", empty=True)
        generated = format_qa(text(row, "question"), text(row, "answer"))
        out = self.generated(identifier(row, "question_id"), text(row, "image_path"), generated, None,
                             {"generator": None, "released": self.path.name})
        return {**out, "released_scores": {FUYU: fuyu_scores(answer, probability, row.get("feedback"))}}
