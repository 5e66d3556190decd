"""Generator tasks: instructions, target text and parsing of generated samples."""

from .agnostic import TaskAgnostic
from .base import Parsed, Task, format_qa, parse_qa_pair, parse_qa_pairs, require_text
from .boxes import (Box, Point, box_group_fullmatch, box_problem, denormalize_box, find_box_groups,
                    find_number_lists, find_point_groups, format_box, format_box_group, format_point,
                    normalize_box, normalize_point)
from .common_vqa import CommonVQA
from .rec import EXPR, REC, ExpressionMatcher, parse_box_answer
from .templates import TEMPLATES_DIR, TemplatePool

__all__ = [
    "Box", "Point", "EXPR", "TEMPLATES_DIR",
    "Parsed", "Task", "TemplatePool", "CommonVQA", "REC", "TaskAgnostic", "ExpressionMatcher",
    "format_qa", "parse_qa_pair", "parse_qa_pairs", "require_text", "parse_box_answer",
    "normalize_box", "denormalize_box", "normalize_point", "format_box", "format_box_group",
    "format_point", "find_box_groups", "find_point_groups", "find_number_lists",
    "box_group_fullmatch", "box_problem",
]
