"""The released synthetic REC data (``syn_lcs_filtered60.jsonl``, ``syn_sbu_filtered60.jsonl``) -> REC records.

One object per line: ``{"img_path", "bbox": [x1, y1, x2, y2] pixels, "expression", "height", "width",
"clip_score"}`` (CLIP raw dot product > 60), ``img_path`` relative to the image folder (LCS:
``00202/002023245.jpg`` under LLaVA-Pretrain's ``images``).
"""
from __future__ import annotations

from genixer.data.sources.lenient import LenientJsonl, Malformed, is_finite, number, text


def pixel_size(row: dict, name: str) -> int:
    value = number(row, name)
    if value <= 0 or value != int(value):
        raise Malformed(f"field '{name}' not a positive integer")
    return int(value)


def clamped_box(value: object, width: int, height: int) -> list[float]:
    """Four finite numbers clamped into the image; ``Malformed`` when not a box or nothing of it is left."""
    if not isinstance(value, list) or len(value) != 4 or not all(is_finite(v) for v in value):
        raise Malformed("field 'bbox' not 4 finite numbers")
    x1, y1, x2, y2 = (float(v) for v in value)
    box = [min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height)]
    if box[2] <= box[0] or box[3] <= box[1]:
        raise Malformed("degenerate bbox")
    return box


class SyntheticREC(LenientJsonl):
    """Records ``{"image", "expression", "bbox", "width", "height", "clip_score"}``: ``RECJsonl``'s records (any
    REC-reading task takes them) plus the released score. Boxes are clamped into the image."""

    def record(self, row: dict) -> dict:
        width, height = pixel_size(row, "width"), pixel_size(row, "height")
        if "bbox" not in row:
            raise Malformed("missing field 'bbox'")
        bbox = clamped_box(row["bbox"], width, height)
        return {"image": str(self.image_root / text(row, "img_path")), "expression": text(row, "expression"),
                "bbox": bbox, "width": width, "height": height, "clip_score": number(row, "clip_score")}
