"""Generator tasks: instructions, target text and parsing of generated samples."""

from .adv_vqa import AdvVQA
from .base import Parsed, QAPair, Region, Task, format_qa, llava_turns, parse_qa_pair, parse_qa_pairs, require_text
from .box_qa import BoxQA, fill_boxes
from .boxes import (
                    Box,
                    Point,
                    box_group_fullmatch,
                    box_problem,
                    denormalize_box,
                    find_box_groups,
                    find_number_lists,
                    find_point_groups,
                    format_box,
                    format_box_group,
                    format_coordinate,
                    format_point,
                    normalize_box,
                    normalize_point,
                    parse_coordinate,
                    point_problem,
)
from .common_vqa import CommonVQA
from .conversation import Conversation
from .dialogue import MultiTurnDialogue, parse_dialogue
from .keyed import keyed_rng
from .long_qa import LongQA
from .mc_vqa import MCVQA
from .one_of import OneOf
from .pointqa_local import PointQALocal
from .pointqa_v7w import PointQAV7W
from .rec import EXPR, REC, ExpressionMatcher, RECListener, parse_box_answer
from .reg import OBJS, REG
from .templates import TEMPLATES_DIR, TemplatePool

__all__ = [
    "Box", "Point", "EXPR", "OBJS", "TEMPLATES_DIR",
    "Parsed", "QAPair", "Region", "Task", "TemplatePool", "CommonVQA", "Conversation", "REC", "RECListener", "OneOf", "ExpressionMatcher",
    "AdvVQA", "LongQA", "MCVQA", "MultiTurnDialogue", "REG", "PointQALocal", "PointQAV7W", "BoxQA",
    "format_qa", "llava_turns", "parse_qa_pair", "parse_qa_pairs", "require_text", "parse_box_answer", "parse_dialogue",
    "normalize_box", "denormalize_box", "normalize_point", "format_box", "format_box_group",
    "format_point", "format_coordinate", "find_box_groups", "find_point_groups", "find_number_lists",
    "box_group_fullmatch", "box_problem", "point_problem", "parse_coordinate", "fill_boxes", "keyed_rng",
]
