"""POPE-style existence questions built from COCO instances -> adv_vqa / common_vqa records."""
from __future__ import annotations

import random
from collections import Counter
from itertools import combinations
from pathlib import Path

from genixer.data.sources.coco import load_coco
from genixer.data.sources.files import AnnotationError

STRATEGIES = ("random", "popular", "adversarial")


class POPEExistence:
    """Per image: "yes" questions for present categories, as many "no" questions for absent ones.

    Absent categories are chosen by ``strategy``: ``random``; ``popular`` (most frequent in the
    dataset); ``adversarial`` (co-occur most often with the present ones). ``per_image`` caps the
    "yes" questions per image. Draws use a generator seeded by (seed, image id), so each image's
    questions do not depend on the others or on the order of the file.
    """

    def __init__(self, instances: str, image_root: str, strategy: str = "random", seed: int = 0,
                 per_image: int | None = 3, question_template: str = "Is there a {category} in the image?") -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"POPE strategy must be one of {STRATEGIES}, got {strategy!r}")
        if "{category}" not in question_template:
            raise ValueError(f"question_template needs a '{{category}}' slot: {question_template!r}")
        self.instances, self.image_root = Path(instances), Path(image_root)
        self.strategy, self.seed, self.per_image = strategy, seed, per_image
        self.question_template = question_template

    def load(self) -> list[dict]:
        coco = load_coco(self.instances)
        names = {c: coco.cats[c]["name"] for c in sorted(coco.cats)}
        present = {i: sorted({a["category_id"] for a in coco.imgToAnns.get(i, [])}) for i in sorted(coco.imgs)}
        frequency = Counter(a["category_id"] for a in coco.anns.values())
        cooccur: Counter[tuple[int, int]] = Counter()
        if self.strategy == "adversarial":
            for cats in present.values():
                for a, b in combinations(cats, 2):
                    cooccur[a, b] += 1
                    cooccur[b, a] += 1
        records = []
        for image_id, cats in present.items():
            absent = [c for c in names if c not in set(cats)]
            n = min(len(cats), len(absent), self.per_image if self.per_image is not None else len(cats))
            if n == 0:
                continue  # nothing to balance against (no objects, or every category present)
            rng = random.Random(f"pope:{self.seed}:{image_id}")
            yes = sorted(rng.sample(cats, n))
            no = self._negatives(absent, cats, n, rng, frequency, cooccur)
            info = coco.imgs[image_id]
            base = {"image": str(self.image_root / info["file_name"]), "width": int(info["width"]),
                    "height": int(info["height"]), "image_id": image_id}
            for pos, neg in zip(yes, no):  # alternate yes / no
                for cat, answer in ((pos, "yes"), (neg, "no")):
                    records.append({**base, "question": self.question_template.format(category=names[cat]),
                                    "answer": answer, "category": names[cat]})
        if not records:
            raise AnnotationError(f"{self.instances}: no image has both present and absent categories")
        return records

    def _negatives(self, absent: list[int], present: list[int], n: int, rng: random.Random,
                   frequency: Counter, cooccur: Counter) -> list[int]:
        if self.strategy == "random":
            return rng.sample(absent, n)
        if self.strategy == "popular":
            score = {c: frequency[c] for c in absent}
        else:
            score = {c: sum(cooccur[p, c] for p in present) for c in absent}
        # Highest score first; ties by frequency, then category id, so the ranking is stable.
        return sorted(absent, key=lambda c: (-score[c], -frequency[c], c))[:n]
