"""Deterministic synthetic "mini world" of coloured shapes with full ground truth (replaces real datasets)."""

from .baselines import BASELINE_EXPRESSION, Baselines, majority_from_pairs
from .build import HELDOUT_ID_OFFSET, VERSION, build_world, file_name, image_id
from .family_files import ANNOTATION_FILES
from .grounding import PH_ED, PH_ST, groups_from_seq, split_groups
from .language import QUESTION_TYPES
from .oracle import CENTRAL_BOX, MIN_IOU, Oracle, majority_answers, normalize_answer, world_seed
from .render import render_scene
from .scene import COLOR_RGB, COLORS, SHAPES, SIZES, Scene, SceneObject, sample_scene
from .verdicts import (
    GroundedVerdict,
    GroupCheck,
    MCVerdict,
    PointQAVerdict,
    QAVerdict,
    RECVerdict,
    REGVerdict,
    V7WVerdict,
)

__all__ = [
    "build_world", "Oracle", "QAVerdict", "RECVerdict", "majority_answers", "normalize_answer", "world_seed", "CENTRAL_BOX",
    "SHAPES", "COLORS", "COLOR_RGB", "SIZES", "QUESTION_TYPES", "Scene", "SceneObject", "sample_scene", "render_scene",
    "file_name", "image_id", "HELDOUT_ID_OFFSET", "VERSION",
    "MIN_IOU", "MCVerdict", "REGVerdict", "PointQAVerdict", "V7WVerdict", "GroupCheck", "GroundedVerdict",
    "Baselines", "BASELINE_EXPRESSION", "majority_from_pairs", "ANNOTATION_FILES", "PH_ST", "PH_ED",
    "groups_from_seq", "split_groups",
]
