"""Does a vision tower see the image's background? A linear probe on its patch features.

Captions name the background ("on a textured dark grey background"), which the instances file does not record: the
phrase is redrawn from the world's seed. Features: the mean and spread over patches of the penultimate layer (what
LLaVA reads; CLS dropped), the image padded to square with the processor's mean colour. A ridge classifier is fitted
on the val images and scored on the held-out ones, beside the commonest held-out phrase (a constant guess).

    python -m genixer.miniworld.models.background_probe TOWER [TOWER ...] --world ROOT [--out FILE]

TOWER: a stage-1 run or checkpoint (holding ``vision_tower/``) or a LLaVA-shaped generator directory.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoImageProcessor, CLIPVisionModel, LlavaForConditionalGeneration

from genixer.backbones.codec import ImageTransform
from genixer.backbones.llava import VISION_DIR, resolve_checkpoint
from genixer.data.images import load_rgb
from genixer.miniworld import Oracle, world_seed
from genixer.miniworld.scene import BACKGROUNDS


def load_tower(path: str | Path) -> tuple[CLIPVisionModel, ImageTransform]:
    root = resolve_checkpoint(path)
    if (root / VISION_DIR).is_dir():
        tower, processor = CLIPVisionModel.from_pretrained(root / VISION_DIR), AutoImageProcessor.from_pretrained(root / VISION_DIR)
    else:
        tower, processor = LlavaForConditionalGeneration.from_pretrained(root).model.vision_tower, AutoImageProcessor.from_pretrained(root)
    return tower.float().eval(), ImageTransform(processor)


@torch.no_grad()
def features(tower: CLIPVisionModel, transform: ImageTransform, world: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean and spread of each image's penultimate patch features, its background's index in BACKGROUNDS)."""
    oracle = Oracle.from_instances(world / f"annotations/instances_{split}.json", world_seed(world / "world.json"))
    x, y = [], []
    for image_id in oracle.image_ids:
        pixels = transform(load_rgb(world / "images" / oracle.file_name(image_id)))[None]
        patches = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][0, 1:]
        x.append(torch.cat([patches.mean(0), patches.std(0)]).numpy())
        y.append(BACKGROUNDS.index(oracle.background(image_id)))
    return np.array(x, dtype=np.float64), np.array(y)


def ridge_predict(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, classes: int, alpha: float = 1.0) -> np.ndarray:
    """One-vs-rest ridge regression on standardized features (with a bias), argmax of the scores."""
    mean, scale = x_fit.mean(0), x_fit.std(0) + 1e-8
    a, b = (np.c_[(x - mean) / scale, np.ones(len(x))] for x in (x_fit, x_test))
    w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ np.eye(classes)[y_fit])
    return (b @ w).argmax(1)


def probe(path: str | Path, world: Path) -> dict:
    tower, transform = load_tower(path)
    (x_fit, y_fit), (x_test, y_test) = (features(tower, transform, world, s) for s in ("val", "heldout"))
    predicted = ridge_predict(x_fit, y_fit, x_test, len(BACKGROUNDS))
    return {"accuracy": float((predicted == y_test).mean()), "commonest": float(np.bincount(y_test).max() / len(y_test)),
            "fit_images": len(y_fit), "test_images": len(y_test), "classes": list(BACKGROUNDS)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m genixer.miniworld.models.background_probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("towers", nargs="+", help="stage-1 runs / checkpoints or LLaVA-shaped generator dirs")
    parser.add_argument("--world", required=True, type=Path, help="mini world root with val and held-out splits")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    results = {}
    for tower in args.towers:
        results[tower] = r = probe(tower, args.world.resolve())
        print(f"{tower}: background of {r['test_images']} held-out images {r['accuracy']:.1%} "
              f"(fitted on {r['fit_images']} val images; the commonest background {r['commonest']:.1%})")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
