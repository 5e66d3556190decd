"""Query files (the images to generate on) and the prompt dataset built from them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from genixer.backbones.codec import Codec
from genixer.data.images import load_rgb
from genixer.generation.sampling import sample_seed
from genixer.tasks.base import Task

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
IMAGE_KEYS = ("image", "image_path", "img_path", "file_path")


@dataclass(frozen=True)
class Query:
    image_id: str
    image: str  # as written in the query file (relative to the image root, or absolute)
    error: str | None = None  # a malformed query line, kept as an error row


def load_queries(path: str | Path) -> list[Query]:
    """A jsonl of ``{"question_id"|"id", "image"|"image_path"|"img_path"}`` or an image folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        return [Query(str(p.relative_to(path).with_suffix("")), str(p.relative_to(path))) for p in files]
    if not path.is_file():
        raise FileNotFoundError(f"query file or image folder not found: {path}")
    queries = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image = next(row[k] for k in IMAGE_KEYS if k in row)
            image_id = str(row.get("question_id", row.get("id", Path(image).stem)))
            queries.append(Query(image_id, image))
        except (json.JSONDecodeError, StopIteration, TypeError, AttributeError):
            queries.append(Query(f"{path.name}:{n}", "", f"malformed query line {n}: expected JSON with one of {IMAGE_KEYS}"))
    return queries


class PromptDataset(Dataset):
    """``samples_per_image`` prompts per query; the sample id and template derive from content."""

    def __init__(self, queries: list[Query], image_root: str | Path, task: Task, codec: Codec, samples_per_image: int,
                 seed: int, max_pixels: int | None = None) -> None:
        self.queries, self.image_root = queries, Path(image_root)
        self.task, self.codec = task, codec
        self.samples_per_image, self.seed, self.max_pixels = samples_per_image, seed, max_pixels

    def __len__(self) -> int:
        return len(self.queries) * self.samples_per_image

    def sample_id(self, i: int) -> str:
        query = self.queries[i // self.samples_per_image]
        return f"{query.image_id}/{self.task.name}/{i % self.samples_per_image}"

    def instruction(self, i: int) -> tuple[int, str]:
        """(template id, instruction) of sample i: a function of the run seed and the sample id only."""
        return self.task.instruction(f"{self.seed}:{self.sample_id(i)}")

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
        query = self.queries[i // self.samples_per_image]
        sample_id = self.sample_id(i)
        template_id, instruction = self.instruction(i)
        meta = {"id": sample_id, "image_id": query.image_id, "image": query.image, "task": self.task.name,
                "template_id": template_id, "instruction": instruction, "seed": sample_seed(self.seed, sample_id)}
        if query.error:
            return {"meta": meta, "error": query.error}
        try:
            image = load_rgb(self.image_root / query.image, self.max_pixels)
        except Exception as err:  # any undecodable input becomes an error row, never a crash
            return {"meta": meta, "error": f"image: {type(err).__name__}: {err}"}
        meta.update(width=image.width, height=image.height)
        return {"meta": meta, "input_ids": self.codec.encode_prompt(instruction), "pixel_values": self.codec.image(image)}


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
