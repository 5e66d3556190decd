"""Choosing the match thresholds on distinct images and their copies (``calibrate``), checking them
(``outcome``), and the CLI: ``python -m genixer.data.decontamination calibrate|outcome``."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from genixer.data.images import decode

from .fingerprints import MAX_PIXELS, WORKERS, Fingerprint, hamming, pixel_diff, stack_thumbs
from .index import MAX_DISTANCE, MAX_PIXEL_DIFF, image_files
from .synthetic import COPIES, synthetic_image


def _pairs(images: Sequence[Image.Image], copies: dict[str, Callable] | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """(copy kind -> ``[pHash bits, thumbnail diff]`` of each image vs its copy (``COPIES`` when None), the same
    for every distinct pair)."""
    copies = COPIES if copies is None else copies

    def one(im):
        fp = Fingerprint.of_image(im)
        others = [Fingerprint.of_image(make(im)) for make in copies.values()]
        return fp, [(int(hamming(fp.phash, o.phash)), int(pixel_diff(fp.thumb, o.thumb))) for o in others]

    with ThreadPoolExecutor(WORKERS) as pool:
        done = list(pool.map(one, images))
    same = {name: np.array([pairs[k] for _, pairs in done], dtype=np.int64).reshape(-1, 2) for k, name in enumerate(copies)}
    hashes = np.array([fp.phash for fp, _ in done], dtype=np.uint64)
    thumbs = stack_thumbs(fp.thumb for fp, _ in done)
    i, j = np.triu_indices(len(done), 1)
    chunks = max(1, len(i) // 4096)
    diffs = [pixel_diff(thumbs[a], thumbs[b]) for a, b in zip(np.array_split(i, chunks), np.array_split(j, chunks))]
    diffs = np.concatenate(diffs) if len(i) else np.zeros(0, np.int64)
    return same, np.stack([hamming(hashes[i], hashes[j]).astype(np.int64), diffs.astype(np.int64)], 1).reshape(-1, 2)


def _outcome(same: dict[str, np.ndarray], distinct: np.ndarray, max_distance: int, max_pixel_diff: int) -> dict:
    close = distinct[:, 0] <= max_distance
    return {"max_distance": max_distance, "max_pixel_diff": max_pixel_diff,
            "copies_found": {name: int(((v[:, 0] <= max_distance) & (v[:, 1] <= max_pixel_diff)).sum()) for name, v in same.items()},
            "distinct_within_bits": int(close.sum()), "distinct_matched": int((close & (distinct[:, 1] <= max_pixel_diff)).sum())}


def calibrate(images: Sequence[Image.Image], copies: dict[str, Callable] | None = None,
              at: tuple[int, int] | None = None) -> dict:
    """Choose the two thresholds on ``images`` (distinct from each other) and their ``copies``.

    ``max_distance``: the largest pHash distance at which the thumbnail check still separates the two kinds of
    pairs, i.e. every copy within it differs less in its thumbnail than every distinct pair within it (the most
    copies found with no distinct pair matched); ``max_pixel_diff``: the middle of that gap. ``at``: thresholds
    to report the outcome of as well (``outcome``).
    """
    same, distinct = _pairs(images, copies)
    pairs = np.concatenate(list(same.values()))
    chosen = {"max_distance": None, "max_pixel_diff": None}
    for bits in range(65):
        copy_diff = int(pairs[pairs[:, 0] <= bits, 1].max(initial=0))
        distinct_diff = int(distinct[distinct[:, 0] <= bits, 1].min(initial=256))
        if distinct_diff <= copy_diff:
            break
        chosen = {"max_distance": bits, "max_pixel_diff": (copy_diff + distinct_diff) // 2, "copy_max_pixel_diff": copy_diff,
                  "distinct_min_pixel_diff": distinct_diff, "copies_within": int((pairs[:, 0] <= bits).sum()),
                  "distinct_within": int((distinct[:, 0] <= bits).sum())}
    return {
        "images": len(images), "copy_pairs": len(pairs), "distinct_pairs": len(distinct),
        "copies": {name: {"max_bits": int(v[:, 0].max()), "max_pixel_diff": int(v[:, 1].max())} for name, v in same.items()},
        "copy_bits": {q: float(np.percentile(pairs[:, 0], q)) for q in (50, 99, 100)},
        "distinct_bits": {q: float(np.percentile(distinct[:, 0], q)) for q in (0, 0.1, 1, 50)} if len(distinct) else {},
        **chosen,
        **({"at": _outcome(same, distinct, *at)} if at else {}),
    }


def outcome(images: Sequence[Image.Image], max_distance: int = MAX_DISTANCE, max_pixel_diff: int = MAX_PIXEL_DIFF,
            copies: dict[str, Callable] | None = None) -> dict:
    """What the thresholds do on ``images`` (distinct from each other): per copy kind, the copies they find; the
    distinct pairs within ``max_distance`` bits, and those they match (within both thresholds)."""
    same, distinct = _pairs(images, copies)
    return {"images": len(images), "distinct_pairs": len(distinct), **_outcome(same, distinct, max_distance, max_pixel_diff)}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m genixer.data.decontamination calibrate|outcome [--images N] [--first SEED] [--folder DIR]``:
    the thresholds ``calibrate`` chooses on synthetic images (seeds FIRST..FIRST+N-1) or on the images of a
    folder (e.g. a sample of COCO), or what the shipped thresholds do on them (``outcome``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m genixer.data.decontamination")
    parser.add_argument("what", choices=["calibrate", "outcome"])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--first", type=int, default=0, help="first synthetic seed (the calibration set: 0)")
    parser.add_argument("--folder", help="use the first --images images of this folder instead (distinct images)")
    parser.add_argument("--max-distance", type=int, default=MAX_DISTANCE)
    parser.add_argument("--max-pixel-diff", type=int, default=MAX_PIXEL_DIFF)
    args = parser.parse_args(argv)
    if args.folder:
        images = [decode(p, MAX_PIXELS)[0] for p in image_files(args.folder)[:args.images]]
    else:
        images = [synthetic_image(seed) for seed in range(args.first, args.first + args.images)]
    result = calibrate(images) if args.what == "calibrate" else outcome(images, args.max_distance, args.max_pixel_diff)
    print(json.dumps(result, indent=1))
