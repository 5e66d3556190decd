"""What identifies an image: exact hashes (file bytes, decoded pixels), the pHash and the 16x16 thumbnail."""
from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from genixer.data.images import decode

MAX_PIXELS = 1 << 26    # larger JPEGs are fingerprinted at a reduced decode, larger others are unreadable
THUMB = 16
WORKERS = min(8, os.cpu_count() or 1)   # default threads fingerprinting images


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix: ``M @ x`` is the DCT of a length-n column ``x``."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)


def phash(image: Image.Image) -> int:
    """64-bit pHash: 32x32 grayscale (antialiased bilinear), 2-D DCT-II, the 8x8 lowest frequencies above
    their median (bit ``8 * row + col``)."""
    gray = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float64)
    low = (_DCT32 @ gray @ _DCT32.T)[:8, :8].ravel()
    return int(np.packbits(low > np.median(low), bitorder="little").view("<u8")[0])


def thumbnail(image: Image.Image) -> np.ndarray:
    """The 16x16 RGB thumbnail (box filter: each pixel the mean of its block), uint8."""
    return np.asarray(image.convert("RGB").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)


def stack_thumbs(thumbs: Iterable[np.ndarray]) -> np.ndarray:
    """Thumbnails as one ``(n, 16, 16, 3)`` uint8 array (n may be 0)."""
    return np.array(list(thumbs), dtype=np.uint8).reshape(-1, THUMB, THUMB, 3)


def pixel_hash(image: Image.Image) -> str:
    rgb = image.convert("RGB")
    return hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between 64-bit hashes (broadcasting)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    if hasattr(np, "bitwise_count"):   # numpy >= 2
        return np.bitwise_count(x)
    return np.unpackbits(x[..., None].view(np.uint8), axis=-1).sum(-1, dtype=np.uint8)


def pixel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest absolute difference between thumbnails (``b`` may be a stack of them)."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return d.reshape(d.shape[0], -1).max(1) if d.ndim == 4 else d.max()


@dataclass(frozen=True)
class Fingerprint:
    sha256: str   # of the file's bytes; "" for an in-memory image
    pixels: str
    phash: int
    thumb: np.ndarray

    @classmethod
    def of_image(cls, image: Image.Image, data: bytes = b"") -> Fingerprint:
        return cls(hashlib.sha256(data).hexdigest() if data else "", pixel_hash(image), phash(image), thumbnail(image))

    @classmethod
    def of_file(cls, path: str | Path, max_pixels: int | None = MAX_PIXELS) -> Fingerprint:
        data = Path(path).read_bytes()
        image, _ = decode(io.BytesIO(data), max_pixels)
        return cls.of_image(image, data)


@dataclass
class ImageHashes:
    """Fingerprints of images named by id (several ids may share a file), and the ids that could not be read."""

    ids: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    pixels: list[str] = field(default_factory=list)
    phash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    thumbs: np.ndarray = field(default_factory=lambda: stack_thumbs([]))
    unreadable: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of_fingerprints(cls, ids: list[str], files: list[str], prints: list[Fingerprint],
                        unreadable: dict[str, str] | None = None) -> ImageHashes:
        return cls(ids, files, [fp.sha256 for fp in prints], [fp.pixels for fp in prints],
                   np.array([fp.phash for fp in prints], dtype=np.uint64), stack_thumbs(fp.thumb for fp in prints),
                   unreadable or {})

    @classmethod
    def of_images(cls, images: Iterable[tuple[str, Image.Image]]) -> ImageHashes:
        """Fingerprints of in-memory images (``(id, image)``; no file, so no ``sha256``: pixels and pHash only)."""
        prints = {key: Fingerprint.of_image(image) for key, image in images}
        return cls.of_fingerprints(list(prints), [""] * len(prints), list(prints.values()))
