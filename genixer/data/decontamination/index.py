"""The evaluation-image index: fingerprints of folders' and benchmarks' images (cached), and ``match``."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import VERSION, hash_files
from .fingerprints import ImageHashes, hamming, pixel_diff

# Chosen by ``calibrate`` on the 600 calibration images (``synthetic_image`` seeds 0-599, 11 copies each;
# docs/decontamination.md): the largest pHash distance at which the thumbnail check still separates every copy
# (thumbnail diff <= 54) from every distinct pair (>= 107), and the middle of that gap.
MAX_DISTANCE = 13       # pHash bits (of 64) within which an evaluation image is a near candidate
MAX_PIXEL_DIFF = 80     # the largest 16x16-thumbnail difference (0-255, any pixel and channel) that confirms it
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def image_files(folder: str | Path) -> list[Path]:
    """Every image file below ``folder``, sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def source_files(source) -> tuple[list[tuple[str, Path]], list]:
    """(``(id, path)`` of every image of a source, what identifies the source for the cache key).

    A folder (str / Path): every image file below it, id = its absolute path. A benchmark (``image_root`` +
    ``questions()``): the distinct ``image`` of its questions, id = ``<benchmark name>:<image>``.
    """
    if isinstance(source, (str, Path)):
        root = Path(source).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"eval images folder {root}: no such folder")
        return [(str(p), p) for p in image_files(root)], ["folder", str(root)]
    name = getattr(source, "name", type(source).__name__)
    root = Path(source.image_root)
    images = dict.fromkeys(str(q["image"]) for q in source.questions())
    return [(f"{name}:{image}", root / image) for image in images], ["benchmark", name, str(root.resolve())]


@dataclass
class EvalImageIndex:
    """Fingerprints of evaluation images; ``match`` checks other images against them."""

    sources: list
    hashes: ImageHashes
    cache: Path | None = None

    @classmethod
    def build(cls, sources: Sequence, cache_dir: str | Path | None = None, workers: int | None = None,
              progress: bool = True) -> EvalImageIndex:
        """Fingerprint the images of ``sources`` (folders and / or benchmarks); ``cache_dir``: where the index
        file of these sources lives (``eval_images-<key>.npz``, key = a hash of the sources)."""
        return cls.from_listing([source_files(s) for s in sources], cache_dir, workers, progress)

    @classmethod
    def from_listing(cls, listed: Sequence[tuple[list, list]], cache_dir: str | Path | None = None,
                     workers: int | None = None, progress: bool = True) -> EvalImageIndex:
        """``build`` from sources already listed by ``source_files``."""
        files = [f for found, _ in listed for f in found]
        described = [what for _, what in listed]
        key = hashlib.sha256(json.dumps([VERSION, described]).encode()).hexdigest()[:16]
        cache = Path(cache_dir) / f"eval_images-{key}.npz" if cache_dir else None
        hashes = hash_files(files, cache, workers, progress, desc="decontamination: evaluation images")
        return cls(described, hashes, cache)

    def __len__(self) -> int:
        return len(self.hashes)

    def match(self, images: ImageHashes, max_distance: int = MAX_DISTANCE,
              max_pixel_diff: int = MAX_PIXEL_DIFF) -> dict[str, dict]:
        """Per image id of ``images``: ``{"exact", "near", "match", "distance"}``. ``match`` is the evaluation
        image's id (None when neither), ``distance`` the pHash distance to it, else to the nearest evaluation
        image (None for an empty index); ``near`` is a perceptual match that is not exact."""
        index = self.hashes
        by_sha, by_pixels = {}, {}
        for k, (sha, px) in enumerate(zip(index.sha256, index.pixels)):
            by_sha.setdefault(sha, k)
            by_pixels.setdefault(px, k)
        out: dict[str, dict] = {}
        chunk = max(1, (1 << 22) // max(1, len(index)))
        for start in range(0, len(images), chunk):
            dist = hamming(images.phash[start:start + chunk, None], index.phash[None, :])
            for i, row in enumerate(dist):
                k = start + i
                exact = by_sha.get(images.sha256[k]) if images.sha256[k] else None
                exact = by_pixels.get(images.pixels[k]) if exact is None else exact
                hit, near = exact, None
                if exact is None:
                    candidates = np.flatnonzero(row <= max_distance)
                    if candidates.size:
                        diff = pixel_diff(images.thumbs[k], index.thumbs[candidates])
                        ok = np.flatnonzero(diff <= max_pixel_diff)
                        if ok.size:
                            hit = near = int(candidates[ok[np.lexsort((diff[ok], row[candidates[ok]]))[0]]])
                distance = int(row[hit]) if hit is not None else int(row.min()) if row.size else None
                out[images.ids[k]] = {"exact": exact is not None, "near": near is not None,
                                      "match": index.ids[hit] if hit is not None else None, "distance": distance}
        return out
