"""RefCOCO / RefCOCO+ / RefCOCOg REC benchmarks read from the refer-API layout (Shikra's REC evaluation).

Files (``paths.datasets``): ``refcoco/refs(unc).p``, ``refcoco+/refs(unc).p``, ``refcocog/refs(umd).p``, each
folder with its ``instances.json``; images ``coco/train2014``. Read by :class:`genixer.data.sources.refcoco.RefCOCO`
(the same reader training uses): one question per sentence of each ref of the split.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from genixer.data.sources.refcoco import RefCOCO, read_refs
from genixer.evaluation.benchmarks import RECPrompt, check_box_frame, original_box, rec_result

# Our REC benchmark question (genixer.evaluation.benchmarks.RECBenchmark): Shikra's "Where is <expr> ...?"
# template (config/_base_/dataset/template/REC.json) asking for a box; the model code adds the image token.
REC_PROMPT = "Where is <expr>? Answer with a box."


class RefCOCOBenchmark:
    """REC on one split of RefCOCO (val / testA / testB), RefCOCO+ (val / testA / testB) or RefCOCOg-umd
    (val / test).

    - question_id: the sentence's ``sent_id`` (unique in a refs file); ``image``: the COCO file name,
      relative to ``image_root``; ``text``: ``prompt`` with ``<expr>`` replaced by the sentence (the
      refer API's ``sent``, stripped). Extra keys: ``ref_id``, ``ann_id``, ``width``, ``height``, ``bbox``.
    - target: the referred instance's COCO box (xywh -> xyxy, clamped to the image) divided by the ORIGINAL
      image width / height; ``box_frame="square"`` maps a model's padded-square boxes (Shikra's released
      checkpoints) back to it first, clamped to the image ("original": ours and Genixer's generators).
    - score: :func:`rec_accuracy` (Shikra ``RECComputeMetrics``): correct when IoU > 0.5 (exactly 0.5
      misses), one parseable normalized box per answer, else ``failed``; percent. Details: ``accuracy``,
      ``miou``, ``failed``, and ``skipped`` (sentences of refs with a degenerate box) when there are any.
    """

    def __init__(self, name: str, refs: str, instances: str, image_root: str, split: str,
                 prompt: str = REC_PROMPT, box_frame: str = "original", templates: str | None = None) -> None:
        self.box_frame, self.prompt = check_box_frame(box_frame), RECPrompt(prompt, templates)
        self.name, self.refs, self.instances = name, Path(refs), Path(instances)
        self.image_root, self.split = Path(image_root), split
        self._records: list[dict] | None = None
        self._skipped = 0

    def records(self) -> list[dict]:
        """One record per sentence (``genixer.data.sources.refcoco.RefCOCO``), with its ``question_id``."""
        if self._records is None:
            # image_root "." keeps the COCO file name relative (question "image" paths are relative to image_root).
            source = RefCOCO(str(self.refs), str(self.instances), ".", split=self.split)
            records = source.load()
            self._skipped = sum(source.skipped.values())
            sent_ids = {ref.get("ref_id"): [s.get("sent_id") for s in ref.get("sentences", [])]
                        for ref in read_refs(self.refs) if ref.get("split") == self.split}
            seen: dict[object, int] = {}
            for r in records:
                j = seen[r["ref_id"]] = seen.get(r["ref_id"], -1) + 1
                ids = sent_ids.get(r["ref_id"], [])
                sent_id = ids[j] if j < len(ids) else None
                r["question_id"] = sent_id if sent_id is not None else f"{r['ref_id']}_{j}"
            counts: dict[str, int] = {}
            for r in records:
                counts[str(r["question_id"])] = counts.get(str(r["question_id"]), 0) + 1
            repeated = [q for q, c in counts.items() if c > 1]
            if repeated:
                raise ValueError(f"{self.refs}: sent_id {repeated[0]} appears in {counts[repeated[0]]} sentences "
                                 f"of split {self.split!r}; question ids must be unique")
            self._records = records
        return self._records

    def questions(self) -> list[dict]:
        return [{"question_id": r["question_id"], "image": r["image"],
                 "text": self.prompt(r["question_id"], r["expression"]),
                 "ref_id": r["ref_id"], "ann_id": r["ann_id"], "width": r["width"], "height": r["height"],
                 "bbox": list(r["bbox"])} for r in self.records()]

    target = staticmethod(original_box)   # the box normalized by the original image size (unrounded)

    def score(self, answers: Mapping[str, str]) -> dict:
        records = self.records()
        out = rec_result(self.name, records, [str(r["question_id"]) for r in records], answers, self.box_frame)
        if self._skipped:
            out["skipped"] = self._skipped
        return out
