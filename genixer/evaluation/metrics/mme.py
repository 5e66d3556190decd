"""MME: its ``eval_tool/calculation.py`` (docs/metrics.md §4)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from genixer.evaluation.metrics._common import require_str

MME_PERCEPTION: tuple[str, ...] = ("existence", "count", "position", "color", "posters", "celebrity",
                                   "scene", "landmark", "artwork", "OCR")
MME_COGNITION: tuple[str, ...] = ("commonsense_reasoning", "numerical_calculation", "text_translation",
                                  "code_reasoning")
MME_CATEGORIES: tuple[str, ...] = MME_PERCEPTION + MME_COGNITION


def _mme_answer(text: str) -> str:
    """MME's reading of a prediction: ``"yes"``, ``"no"`` or ``"other"``."""
    text = text.lower()
    if text in ("yes", "no"):
        return text
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def mme_scores(records: Iterable[Mapping]) -> dict:
    """MME scores: per category ``acc``, ``acc_plus`` and ``score``, and the two totals.

    Matches ``calculate_metrics.process_result`` of MME's ``eval_tool/calculation.py`` (run by
    LLaVA ``scripts/v1_5/eval/mme.sh``). Each record has ``category`` (one of
    :data:`MME_CATEGORIES`, MME's names: ``"OCR"`` is upper case), ``image``, ``answer``
    (``yes``/``no``, any case) and ``prediction``. The prediction is lowercased (not stripped);
    exactly ``yes``/``no`` is taken as is, otherwise its first 4 characters decide: containing
    ``yes`` -> yes, else containing ``no`` -> no, else "other" (always wrong). Quirks kept:
    ``"Not sure"``, ``"none"`` and ``"nope"`` read as no; ``"I think yes"`` and ``"  yes"`` (two
    leading spaces) read as other; ``"yesterday"`` reads as yes.

    ``acc`` = share of a category's questions answered right; ``acc_plus`` = share of its images
    with *both* questions right; ``score`` = ``acc * 100 + acc_plus * 100`` (max 200).
    ``perception`` sums the scores of the 10 perception categories, ``cognition`` those of the 4
    cognition ones, in MME's order (max 2000 and 800).

    Differences: the official tool pairs consecutive lines of a category file; we pair records by
    ``(category, image)`` and require exactly 2 per image. The official tool needs every category
    file; we score the categories present and the totals sum over those (0.0 when none), so a
    partial run gives partial totals.

    Returns ``{"categories": {name: {"acc", "acc_plus", "score"}}, "perception", "cognition"}``.
    """
    if isinstance(records, (str, bytes, Mapping)):
        raise TypeError("records must be an iterable of mappings (one per question)")
    per_image: dict[str, dict[str, list[bool]]] = {}
    count = 0
    for i, record in enumerate(records):
        count += 1
        if not isinstance(record, Mapping):
            raise TypeError(f"records[{i}] must be a mapping, got {type(record).__name__}")
        missing = [key for key in ("category", "image", "answer", "prediction") if key not in record]
        if missing:
            raise ValueError(f"records[{i}] lacks {', '.join(missing)}")
        category = record["category"]
        if category not in MME_CATEGORIES:
            raise ValueError(f"records[{i}] has unknown MME category {category!r}; "
                             f"known: {', '.join(MME_CATEGORIES)}")
        answer = require_str(record["answer"], f"records[{i}]['answer']").lower()
        if answer not in ("yes", "no"):
            raise ValueError(f"records[{i}] has answer {record['answer']!r}: MME answers are yes or no")
        prediction = require_str(record["prediction"], f"records[{i}]['prediction']")
        image = record["image"]
        per_image.setdefault(category, {}).setdefault(str(image), []).append(_mme_answer(prediction) == answer)
    if count == 0:
        raise ValueError("no MME records")
    categories: dict[str, dict[str, float]] = {}
    for category in MME_CATEGORIES:
        images = per_image.get(category)
        if not images:
            continue
        odd = [image for image, results in images.items() if len(results) != 2]
        if odd:
            raise ValueError(f"MME has 2 questions per image; category {category!r} image {odd[0]!r} "
                             f"has {len(images[odd[0]])}")
        results = [ok for pair in images.values() for ok in pair]
        acc = sum(results) / len(results)
        acc_plus = sum(all(pair) for pair in images.values()) / len(images)
        categories[category] = {"acc": acc, "acc_plus": acc_plus, "score": acc * 100 + acc_plus * 100}
    totals = {group: sum((categories[c]["score"] for c in names if c in categories), 0.0)
              for group, names in (("perception", MME_PERCEPTION), ("cognition", MME_COGNITION))}
    return {"categories": categories, **totals}
