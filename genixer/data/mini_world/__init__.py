"""Deterministic synthetic "mini world" of coloured shapes with full ground truth (replaces real datasets)."""

from .build import HELDOUT_ID_OFFSET, VERSION, build_world, file_name, image_id
from .language import QUESTION_TYPES
from .oracle import CENTRAL_BOX, Oracle, QAVerdict, RECVerdict, majority_answers, normalize_answer
from .render import render_scene
from .scene import COLOR_RGB, COLORS, SHAPES, SIZES, Scene, SceneObject, sample_scene

__all__ = [
    "build_world", "Oracle", "QAVerdict", "RECVerdict", "majority_answers", "normalize_answer", "CENTRAL_BOX",
    "SHAPES", "COLORS", "COLOR_RGB", "SIZES", "QUESTION_TYPES", "Scene", "SceneObject", "sample_scene", "render_scene",
    "file_name", "image_id", "HELDOUT_ID_OFFSET", "VERSION",
]
