"""Query files (the images to generate on) and the prompt dataset built from them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from genixer.backbones.codec import Codec
from genixer.data.images import IMAGE_ERRORS, decode
from genixer.generation.best_of import candidate_id
from genixer.generation.sampling import sample_seed
from genixer.tasks.base import Task

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
IMAGE_KEYS = ("image", "image_path", "img_path", "file_path")
ID_KEYS = ("question_id", "id")


@dataclass(frozen=True)
class Query:
    image_id: str
    image: str  # as written in the query file (relative to the image root, or absolute)
    error: str | None = None  # a malformed or duplicate query line, kept as an error row


def load_queries(path: str | Path) -> list[Query]:
    """An image folder (every image below it, id = its relative path) or a jsonl of
    ``{"question_id"|"id", "image"|"image_path"|"img_path"|"file_path"}``.

    A line that is not UTF-8, not a JSON object, lacks an image, has an id that is not a string or
    an integer, or repeats an earlier line's id is an error row keyed ``<file>:<line>``: counted,
    never dropped, and it does not stop the other lines.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        return [Query(p.relative_to(path).as_posix(), p.relative_to(path).as_posix()) for p in files]
    if not path.is_file():
        raise FileNotFoundError(f"query file or image folder not found: {path}")
    queries, first_line = [], {}
    for n, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        where = f"{path.name}:{n}"
        try:
            image_id, image = query_line(raw)
        except ValueError as err:
            queries.append(Query(where, "", f"query line {n}: {err}"))
            continue
        if image_id in first_line:
            queries.append(Query(where, image, f"query line {n}: duplicate id {image_id!r} (first on line {first_line[image_id]})"))
            continue
        first_line[image_id] = n
        queries.append(Query(image_id, image))
    return queries


def query_line(raw: bytes) -> tuple[str, str]:
    """(image id, image path) of one query line; ``ValueError`` saying what is wrong."""
    try:
        row = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    image = next((row[k] for k in IMAGE_KEYS if k in row), None)
    if not isinstance(image, str) or not image.strip():
        raise ValueError(f"expected a non-empty image path in one of {IMAGE_KEYS}")
    key = next((k for k in ID_KEYS if k in row), None)
    if key is None:
        return Path(image).stem, image
    image_id = row[key]
    if isinstance(image_id, bool) or not isinstance(image_id, (str, int)) or not str(image_id).strip():
        raise ValueError(f"{key} must be a non-empty string or an integer, got {json.dumps(image_id)}")
    return str(image_id), image


def image_root_for(queries: str | Path, image_root: str | Path | None) -> Path:
    """``image_root`` when given; else an image folder is its own root and a query file's images are
    relative to the file's folder."""
    if image_root:
        return Path(image_root)
    queries = Path(queries)
    return queries if queries.is_dir() else queries.parent


class PromptDataset(Dataset):
    """``samples_per_image`` prompts per query, each ``best_of`` times (candidates ``<sample id>#<k>``: the same
    prompt, their own seeds); the sample id and template derive from content."""

    def __init__(self, queries: list[Query], image_root: str | Path, task: Task, codec: Codec, samples_per_image: int,
                 seed: int, max_pixels: int | None = None, best_of: int = 1) -> None:
        self.queries, self.image_root = queries, Path(image_root)
        self.task, self.name, self.codec = task, task.name, codec
        self.samples_per_image, self.seed, self.max_pixels, self.best_of = samples_per_image, seed, max_pixels, best_of

    def __len__(self) -> int:
        return len(self.queries) * self.samples_per_image * self.best_of

    def sample_id(self, i: int) -> str:
        """The id of item i: its sample's, or with ``best_of`` > 1 its candidate's."""
        sample, k = divmod(i, self.best_of)
        return candidate_id(self._sample_id(sample), k) if self.best_of > 1 else self._sample_id(sample)

    def _sample_id(self, sample: int) -> str:
        query = self.queries[sample // self.samples_per_image]
        return f"{query.image_id}/{self.name}/{sample % self.samples_per_image}"

    def instruction(self, i: int) -> tuple[int, str]:
        """(template id, instruction) of item i: a function of the run seed and the sample id only."""
        return self.task.instruction(f"{self.seed}:{self._sample_id(i // self.best_of)}")

    def by_prompt_length(self, indices: list[int]) -> list[int]:
        """``indices`` ordered longest prompt first, so batches hold prompts of similar length (less padding).

        Stable, and a function of the content only: every process computes the same order.
        """
        lengths: dict[str, int] = {}  # prompts repeat per template: tokenize each once
        def length(i: int) -> int:
            text = self.instruction(i)[1]
            if text not in lengths:
                lengths[text] = len(self.codec.encode_prompt(text))
            return lengths[text]
        return sorted(indices, key=lambda i: -length(i))

    def __getitem__(self, i: int) -> dict:
        query = self.queries[i // (self.samples_per_image * self.best_of)]
        sample_id = self.sample_id(i)
        template_id, instruction = self.instruction(i)
        meta = {"id": sample_id, "image_id": query.image_id, "image": query.image, "task": self.name,
                "template_id": template_id, "instruction": instruction, "seed": sample_seed(self.seed, sample_id)}
        if query.error:
            return {"meta": meta, "error": query.error}
        try:
            image, (width, height) = decode(self.image_root / query.image, self.max_pixels)
        except IMAGE_ERRORS as err:  # an undecodable input is an error row; anything else is a bug and stops the run
            return {"meta": meta, "error": f"image: {type(err).__name__}: {err}"}
        # The file's own size: boxes are normalized, and exports turn them into the original's pixels
        # even when an oversized JPEG was decoded at a reduced scale.
        meta.update(width=width, height=height)
        return {"meta": meta, "input_ids": self.codec.encode_prompt(instruction), "pixel_values": self.codec.image(image)}


class QuestionDataset(PromptDataset):
    """One prompt per benchmark question (the LLaVA eval layout ``{"question_id", "image", "text"}``): the
    question's own text is the prompt and its id the sample id. A repeated id is an error row."""

    def __init__(self, questions: list[dict], image_root: str | Path, name: str, codec: Codec,
                 max_pixels: int | None = None) -> None:
        queries, seen = [], set()
        for q in questions:
            qid = str(q["question_id"])
            queries.append(Query(qid, q["image"], f"question {qid} repeats" if qid in seen else None))
            seen.add(qid)
        self.queries, self.image_root, self.name, self.codec = queries, Path(image_root), name, codec
        self.texts = [q["text"] for q in questions]
        self.samples_per_image, self.seed, self.max_pixels, self.best_of = 1, 0, max_pixels, 1

    def sample_id(self, i: int) -> str:
        return self.queries[i].image_id if self.queries[i].error is None else f"{self.queries[i].image_id}#{i}"

    def instruction(self, i: int) -> tuple[int, str]:
        return 0, self.texts[i]


class PromptCollator:
    """Left-pads prompts for batched generation; failed items travel as error rows."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        ok = [b for b in batch if "error" not in b]
        errors = [{**b["meta"], "status": "error", "reason": b["error"]} for b in batch if "error" in b]
        out = {"meta": [b["meta"] for b in ok], "errors": errors}
        if ok:
            width = max(len(b["input_ids"]) for b in ok)
            ids = torch.full((len(ok), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(ok), width), dtype=torch.long)
            for row, b in enumerate(ok):
                n = len(b["input_ids"])
                ids[row, width - n:], mask[row, width - n:] = b["input_ids"], 1
            out.update(input_ids=ids, attention_mask=mask, pixel_values=torch.stack([b["pixel_values"] for b in ok]))
        return out
