"""Flags for a generation run's rows: which images are (near) copies of evaluation images."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genixer.runs.layout import RunDir

from .cache import hash_files
from .index import MAX_DISTANCE, MAX_PIXEL_DIFF, EvalImageIndex


def flag_rows(rows: Sequence[dict], image_root: str | Path, index: EvalImageIndex, max_distance: int = MAX_DISTANCE,
              max_pixel_diff: int = MAX_PIXEL_DIFF, cache: Path | None = None, workers: int | None = None,
              progress: bool = True) -> list[dict]:
    """Per row (``image`` relative to ``image_root``): ``{"exact", "near", "match", "distance"}`` (``EvalImageIndex.
    match``), or ``{"status": "error", "reason"}`` when its image cannot be read. Each image is read once;
    ``cache``: a fingerprint cache file for these images."""
    root = Path(image_root)
    images = sorted({str(r["image"]) for r in rows})
    hashes = hash_files([(i, root / i) for i in images], cache, workers, progress, desc="decontamination: generated images")
    found = index.match(hashes, max_distance, max_pixel_diff)
    for image, reason in hashes.unreadable.items():
        found[image] = {"status": "error", "reason": reason}
    return [found[str(r["image"])] for r in rows]


def flag_run(run: str | Path, index: EvalImageIndex, **kwargs) -> list[tuple[dict, dict]]:
    """``(row, flag)`` for the ok rows of a finished generation run, their images under its manifest's image_root
    (``kwargs``: ``flag_rows``')."""
    source = RunDir(run)
    rows = [r for r in source.rows("generate") if r.get("status") == "ok"]
    return list(zip(rows, flag_rows(rows, source.read_manifest()["inputs"]["image_root"], index, **kwargs)))
