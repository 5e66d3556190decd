"""Decontamination: find generated samples whose image is also an evaluation image (docs/decontamination.md).

An image matches *exactly* when its file bytes or decoded pixels equal an evaluation image's, and *near* when an
evaluation image is within ``max_distance`` pHash bits and their 16x16 thumbnails differ by at most
``max_pixel_diff``; both thresholds come from ``calibrate``.

- ``fingerprints``: the hashes and thumbnail of an image (``Fingerprint``, ``ImageHashes``);
- ``cache``: ``hash_files``, image files fingerprinted in parallel, with a cache file;
- ``index``: ``EvalImageIndex`` of folders' and benchmarks' images, and ``match``;
- ``flags``: ``flag_rows`` / ``flag_run``, a generation run's rows checked against an index;
- ``stage``: ``Decontamination``, the filter stage's settings, rule and manifest record;
- ``synthetic`` / ``calibration``: calibration images and copies, ``calibrate`` / ``outcome`` and the CLI
  (``python -m genixer.data.decontamination calibrate|outcome``).
"""
from .cache import VERSION, hash_files
from .calibration import calibrate, main, outcome
from .fingerprints import MAX_PIXELS, THUMB, Fingerprint, ImageHashes, hamming, phash, pixel_diff, pixel_hash, thumbnail
from .flags import flag_rows, flag_run
from .index import IMAGE_EXTENSIONS, MAX_DISTANCE, MAX_PIXEL_DIFF, EvalImageIndex, image_files, source_files
from .stage import CONF, UNAVAILABLE, Decontamination, UnknownBenchmark, load_benchmarks
from .synthetic import COPIES, jpeg, resized, synthetic_image

__all__ = [
    "COPIES", "CONF", "IMAGE_EXTENSIONS", "MAX_DISTANCE", "MAX_PIXELS", "MAX_PIXEL_DIFF", "THUMB", "UNAVAILABLE", "VERSION",
    "Decontamination", "EvalImageIndex", "Fingerprint", "ImageHashes", "UnknownBenchmark", "calibrate", "flag_rows",
    "flag_run", "hamming", "hash_files", "image_files", "jpeg", "load_benchmarks", "main", "outcome", "phash",
    "pixel_diff", "pixel_hash", "resized", "source_files", "synthetic_image", "thumbnail",
]
