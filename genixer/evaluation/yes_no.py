"""Yes/no benchmarks read from their official files: POPE (COCO) and MME.

Each follows the protocol of :mod:`genixer.evaluation.benchmarks`; prompts are LLaVA-1.5's (its
``llava_pope_test.jsonl`` and ``llava_mme.jsonl``), scoring is :func:`~genixer.evaluation.metrics.pope_metrics`
and :func:`~genixer.evaluation.metrics.mme_scores`. Layouts and quirks: docs/benchmarks.md §4 and §5.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from genixer.evaluation.benchmarks import _check_known
from genixer.evaluation.choice import _need
from genixer.evaluation.metrics import MME_CATEGORIES, MME_PERCEPTION, mme_scores, pope_metrics
from genixer.runs.files import read_jsonl

SHORT_SUFFIX = "\nAnswer the question using a single word or phrase."
POPE_SPLITS = ("adversarial", "popular", "random")
_MME_ASK = "Please answer yes or no."
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class POPEBenchmark:
    """POPE over COCO val2014: the official ``coco_pope_<split>.json`` files (JSON lines ``question_id``,
    ``image``, ``text``, ``label``) in ``annotations``, images in ``image_root``.

    question_id = ``<split>/<question_id>`` (the split files number their questions alike). ``score`` is
    LLaVA-1.5's POPE number: the F1 of each split (``eval_pope.py``, "yes" positive) averaged over the
    splits, in percent. A missing answer is scored as the opposite of its label (a miss).
    """

    def __init__(self, name: str, annotations: str, image_root: str, splits: Sequence[str] = POPE_SPLITS,
                 prompt_suffix: str = SHORT_SUFFIX) -> None:
        self.name, self.folder, self.image_root = name, Path(annotations), Path(image_root)
        self.splits, self.prompt_suffix = tuple(splits), prompt_suffix
        if not self.splits:
            raise ValueError(f"{name}: no POPE split given")

    def lines(self) -> dict[str, list[dict]]:
        """split -> its question lines, each with ``id`` (the question_id used here) added."""
        out = {}
        for split in self.splits:
            path = self.folder / f"coco_pope_{split}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such file (the official POPE split file)")
            lines, seen = read_jsonl(path), set()
            for k, line in enumerate(lines, 1):
                _need(line, ("question_id", "image", "text", "label"), f"{path}: line {k}")
                if line["label"] not in ("yes", "no"):
                    raise ValueError(f"{path}: line {k} has label {line['label']!r}; POPE labels are yes or no")
                line["id"] = f"{split}/{line['question_id']}"
                if line["id"] in seen:
                    raise ValueError(f"{path}: question_id {line['question_id']} appears twice")
                seen.add(line["id"])
            out[split] = lines
        return out

    def questions(self) -> list[dict]:
        return [{"question_id": q["id"], "image": q["image"], "text": q["text"] + self.prompt_suffix, "category": split}
                for split, lines in self.lines().items() for q in lines]

    def score(self, answers: Mapping[str, str]) -> dict:
        by_split = self.lines()
        _check_known(answers, {q["id"] for lines in by_split.values() for q in lines}, self.name)
        result = {"benchmark": self.name, "metric": "POPE F1 (mean over splits)",
                  "n": sum(map(len, by_split.values())),
                  "missing": sum(q["id"] not in answers for lines in by_split.values() for q in lines)}
        details, f1s = {}, []
        for split, lines in by_split.items():
            labels = [q["label"] for q in lines]
            m = pope_metrics([answers.get(q["id"], "no" if q["label"] == "yes" else "yes") for q in lines], labels)
            f1s.append(m["f1"])
            details |= {f"{split}_{k}": m[k] for k in ("accuracy", "precision", "recall", "f1", "yes_ratio")}
        return result | {"score": 100 * sum(f1s) / len(f1s), "f1": sum(f1s) / len(f1s), **details}


class MMEBenchmark:
    """MME from the official ``MME_Benchmark_release_version`` folder (``root``, the ``image_root``).

    Each ``<category>/`` holds either images and ``.txt`` files side by side, or ``images/`` and
    ``questions_answers_YN/``; each txt (named as its image) has two lines ``question<TAB>Yes|No``.
    question_id = ``<image path>#<line>`` (LLaVA's ids repeat the image path for both questions). The prompt is
    LLaVA's: the question less its trailing "Please answer yes or no.", then the short-answer suffix.
    ``score`` = the perception total (max 2000), LLaVA-1.5's MME column; ``categories`` defaults to all 14.
    """

    def __init__(self, name: str, root: str, categories: Sequence[str] | None = None,
                 prompt_suffix: str = SHORT_SUFFIX) -> None:
        self.name, self.image_root, self.prompt_suffix = name, Path(root), prompt_suffix
        self.categories = tuple(MME_CATEGORIES if categories is None else categories)
        unknown = [c for c in self.categories if c not in MME_CATEGORIES]
        if unknown or not self.categories:
            raise ValueError(f"{name}: unknown MME categories {unknown}; known: {', '.join(MME_CATEGORIES)}")

    def items(self) -> list[dict]:
        """One per question: ``id``, ``image`` (relative to the root), ``category``, ``question``, ``answer``."""
        items = []
        for category in self.categories:
            folder = self.image_root / category
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder}: no such MME category folder")
            split = (folder / "images").is_dir()
            image_dir, qa_dir = (folder / "images", folder / "questions_answers_YN") if split else (folder, folder)
            if not qa_dir.is_dir():
                raise FileNotFoundError(f"{qa_dir}: no such folder (MME puts the questions of {category} there)")
            images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
            texts = sorted(qa_dir.glob("*.txt"))
            if not texts:
                raise FileNotFoundError(f"{qa_dir}: no question files (.txt)")
            for txt in texts:
                if txt.stem not in images:
                    raise FileNotFoundError(f"{txt}: no image {txt.stem}.* in {image_dir}")
                image = images[txt.stem].relative_to(self.image_root).as_posix()
                lines = [line for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
                if len(lines) != 2:
                    raise ValueError(f"{txt}: {len(lines)} questions; MME has 2 per image")
                for k, line in enumerate(lines):
                    parts = line.strip().split("\t")
                    if len(parts) != 2 or parts[1].lower() not in ("yes", "no"):
                        raise ValueError(f"{txt}: line {k + 1} is not 'question<TAB>Yes|No': {line!r}")
                    items.append({"id": f"{image}#{k}", "image": image, "category": category,
                                  "question": parts[0], "answer": parts[1]})
        return items

    def questions(self) -> list[dict]:
        out = []
        for item in self.items():
            question = item["question"].strip()
            if question.endswith(_MME_ASK):
                question = question[: -len(_MME_ASK)].rstrip()
            out.append({"question_id": item["id"], "image": item["image"], "text": question + self.prompt_suffix,
                        "category": item["category"]})
        return out

    def score(self, answers: Mapping[str, str]) -> dict:
        items = self.items()
        _check_known(answers, {i["id"] for i in items}, self.name)
        scores = mme_scores([{"category": i["category"], "image": i["image"], "answer": i["answer"],
                              "prediction": answers.get(i["id"], "")} for i in items])
        perception = [c for c in self.categories if c in MME_PERCEPTION]
        return {"benchmark": self.name, "metric": "MME perception score", "n": len(items),
                "missing": sum(i["id"] not in answers for i in items),
                "score": scores["perception"] if perception else None, "perception": scores["perception"],
                "cognition": scores["cognition"],
                **{f"score_{c}": v["score"] for c, v in scores["categories"].items()}}
