"""Mini-world vocabulary, scene dataclasses and seeded scene sampling."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shapes import mask_bbox

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES: tuple[str, ...] = ("small", "large")
# Saturated hues, far from every grey a background can take.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 230),
    "yellow": (240, 210, 20),
    "purple": (150, 50, 200),
    "orange": (250, 130, 20),
}
# Each split's own rng streams; the pool: unannotated images generators write for (its ground truth is a
# study's ceiling condition).
SPLIT_CODES: dict[str, int] = {"train": 0, "heldout": 1, "val": 2, "pool": 3}
SIDE_RANGE = (96, 160)  # image width/height, inclusive
SIZE_FRACTION: dict[str, tuple[float, float]] = {"small": (0.16, 0.20), "large": (0.28, 0.36)}
MAX_OBJECTS = 4
MARGIN = 3  # px of free space kept between object boxes
COLOR_JITTER = 12

# Independent random streams per image, so adding a language feature never changes pixels.
STREAM_SCENE, STREAM_LANGUAGE, STREAM_NOISE = 0, 1, 2
# One more stream per annotation family written later; new families take new ids, never reuse one.
(STREAM_GQA, STREAM_AOKVQA, STREAM_DETAIL, STREAM_REFCOCO, STREAM_VG, STREAM_POINTQA, STREAM_V7W, STREAM_BOXCOT,
 STREAM_RD) = range(10, 19)


def rng_for(seed: int, split: str, index: int, stream: int) -> np.random.Generator:
    """Generator depending only on (seed, split, index, stream)."""
    return np.random.default_rng([seed, SPLIT_CODES[split], index, stream])


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    size: str
    box: tuple[int, int, int, int]  # tight pixel box; x2/y2 exclusive, so w = x2 - x1
    rgb: tuple[int, int, int] | None = None  # drawing colour (jittered); None when loaded from GT
    origin: tuple[int, int] = (0, 0)  # top-left of the drawing square
    side: int = 0  # side of the drawing square

    @property
    def center(self) -> tuple[float, float]:
        x1, y1, x2, y2 = self.box
        return (x1 + x2) / 2, (y1 + y2) / 2

    @property
    def area(self) -> int:
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)

    @property
    def label(self) -> str:
        """'small red circle'."""
        return f"{self.size} {self.color} {self.shape}"


# A background's caption words by kind ('on a light grey background'); the tone is light or dark.
PHRASES = {"solid": "{tone} grey", "gradient": "grey gradient", "noise": "textured {tone} grey"}
BACKGROUNDS = tuple(dict.fromkeys(p.format(tone=t) for p in PHRASES.values() for t in ("light", "dark")))


@dataclass(frozen=True)
class Background:
    kind: str  # "solid" | "gradient" | "noise"
    levels: tuple[int, int]  # grey level (solid/noise use the first), gradient start/end
    vertical: bool = True  # gradient direction
    noise_sigma: float = 0.0

    @property
    def phrase(self) -> str:
        """Caption words, e.g. 'light grey' in 'on a light grey background'."""
        return PHRASES[self.kind].format(tone="light" if self.levels[0] >= 128 else "dark")


@dataclass(frozen=True)
class Scene:
    split: str
    index: int
    width: int
    height: int
    background: Background
    objects: tuple[SceneObject, ...]


def _sample_background(rng: np.random.Generator) -> Background:
    kind = str(rng.choice(["solid", "gradient", "noise"], p=[0.4, 0.3, 0.3]))
    light = bool(rng.random() < 0.5)
    level = int(rng.integers(185, 236) if light else rng.integers(35, 81))
    if kind == "gradient":
        other = int(rng.integers(35, 236))
        while abs(other - level) < 40:  # keep the gradient visible
            other = int(rng.integers(35, 236))
        return Background("gradient", (level, other), vertical=bool(rng.random() < 0.5))
    sigma = float(rng.uniform(4.0, 10.0)) if kind == "noise" else 0.0
    return Background(kind, (level, level), noise_sigma=sigma)


def _overlaps(box: tuple[int, int, int, int], others: list[SceneObject]) -> bool:
    x1, y1, x2, y2 = box
    for o in others:
        ox1, oy1, ox2, oy2 = o.box
        if x1 < ox2 + MARGIN and ox1 < x2 + MARGIN and y1 < oy2 + MARGIN and oy1 < y2 + MARGIN:
            return True
    return False


def _try_place(rng, shape, color, size, width, height, placed) -> SceneObject | None:
    long_side, short_side = max(width, height), min(width, height)
    for _ in range(10):  # resample the side until the square fits
        side = int(round(rng.uniform(*SIZE_FRACTION[size]) * long_side))
        if side <= short_side - 2:
            break
    else:
        return None
    mx1, my1, mx2, my2 = mask_bbox(shape, side)
    for _ in range(40):
        ox = int(rng.integers(-mx1, width - mx2 + 1))
        oy = int(rng.integers(-my1, height - my2 + 1))
        box = (ox + mx1, oy + my1, ox + mx2, oy + my2)
        if not _overlaps(box, placed):
            base = np.array(COLOR_RGB[color])
            rgb = np.clip(base + rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, size=3), 0, 255)
            return SceneObject(shape, color, size, box, tuple(int(v) for v in rgb), (ox, oy), side)
    return None


def sample_scene(seed: int, split: str, index: int) -> Scene:
    """The scene of image `index` of `split`; depends on nothing else."""
    rng = rng_for(seed, split, index, STREAM_SCENE)
    width, height = (int(v) for v in rng.integers(SIDE_RANGE[0], SIDE_RANGE[1] + 1, size=2))
    background = _sample_background(rng)
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    placed: list[SceneObject] = []
    for _ in range(n):
        if placed and rng.random() < 0.2:
            # Duplicate colour+shape now and then so size/position references get exercised.
            src = placed[int(rng.integers(len(placed)))]
            shape, color = src.shape, src.color
        else:
            shape, color = str(rng.choice(SHAPES)), str(rng.choice(COLORS))
        size = str(rng.choice(SIZES))
        obj = _try_place(rng, shape, color, size, width, height, placed)
        if obj is None and size == "large":  # crowded image: a small one may still fit
            obj = _try_place(rng, shape, color, "small", width, height, placed)
        if obj is not None:
            placed.append(obj)
    return Scene(split, index, width, height, background, tuple(placed))
