"""Safe weight loading for the converters: safetensors or ``torch.load(weights_only=True)``, shards, key checks.

Every problem is a ``ConversionError`` that names the file and lists the keys involved.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file as load_safetensors
from safetensors.torch import save_file as save_safetensors

INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")  # preferred first
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
DERIVED = ("rotary_emb.inv_freq",)  # buffers older transformers saved; recomputed from the config, so skipped


class ConversionError(ValueError):
    """A source checkpoint that cannot be converted as it is (missing files, keys, shapes or dtypes)."""


def listing(names, limit: int = 20) -> str:
    """``a, b, c ... and N more``: readable even for the hundreds of keys of a 7B model."""
    names = sorted(names)
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint dir: the shards its index lists (all must exist), or its single file."""
    for name in INDEXES:
        index = directory / name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (directory / s).is_file()]
            if missing:
                raise ConversionError(f"{index} lists shards that are not in {directory}: {listing(missing)}")
            return [directory / s for s in shards]
    for name in SINGLE_FILES:
        if (directory / name).is_file():
            return [directory / name]
    raise ConversionError(f"{directory}: no weights (looked for {', '.join(INDEXES + SINGLE_FILES)})")


def load_file(path: Path) -> dict[str, torch.Tensor]:
    """One weight file; ``.bin`` files are read with ``weights_only=True`` (tensors only, never pickled code)."""
    if path.suffix == ".safetensors":
        state = load_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # weights_only refuses anything but tensors and plain containers
            raise ConversionError(f"{path}: not a plain tensor file ({type(error).__name__}: {error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: expected a dict of named tensors")
    check_dtypes(state, path)
    return state


def check_dtypes(state: dict[str, torch.Tensor], where: Path) -> None:
    wrong = {f"{name} ({t.dtype})" for name, t in state.items() if t.dtype not in FLOAT_DTYPES}
    if wrong:
        raise ConversionError(f"{where}: weights must be float16, bfloat16 or float32, got {listing(wrong)}")


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint dir; with an index, the keys it lists must be the keys found."""
    files = weight_files(directory)
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(path))
    index = next((directory / n for n in INDEXES if (directory / n).is_file()), None)
    if index is not None:
        listed = set(json.loads(index.read_text())["weight_map"])
        if listed != set(state):
            raise ConversionError(f"{index} does not match its shards: listed but absent {listing(listed - set(state))}; "
                                  f"present but unlisted {listing(set(state) - listed)}")
    return state


@dataclass(frozen=True)
class KeyMap:
    """Prefix renames from an original layout to ours (the first matching prefix wins), and back for messages."""

    pairs: tuple[tuple[str, str], ...]

    def rename(self, name: str) -> str | None:
        return next((ours + name[len(original):] for original, ours in self.pairs if name.startswith(original)), None)

    def original(self, ours: str) -> str:
        return next((original + ours[len(mine):] for original, mine in self.pairs if ours.startswith(mine)), ours)

    def apply(self, state: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: Path) -> dict[str, torch.Tensor]:
        """``state`` under our names; it must hold exactly the ``expected`` keys (our names -> shapes)."""
        mapped, unknown = {}, []
        for name, tensor in state.items():
            ours = self.rename(name)
            if ours in expected:
                mapped[ours] = tensor
            elif not name.endswith(DERIVED):
                unknown.append(name)
        missing = [self.original(k) for k in expected if k not in mapped]
        if unknown or missing:
            raise ConversionError(f"{source}: unexpected keys for this layout: {listing(unknown) or 'none'}; "
                                  f"missing keys: {listing(missing) or 'none'}")
        return mapped


def check_shapes(weights: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: Path, keys: KeyMap) -> None:
    wrong = [f"{keys.original(k)} {tuple(t.shape)} (expected {tuple(expected[k])})"
             for k, t in weights.items() if t.shape != expected[k]]
    if wrong:
        raise ConversionError(f"{source}: shapes do not match the model the config describes: {listing(wrong)}")


def replace_tensors(directory: Path, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Overwrite some tensors of a safetensors checkpoint dir in place: shapes checked first, stored dtype kept.

    A name matches the stored key it ends (``multi_modal_projector.linear_1.weight`` is stored with or without
    ``model.``, depending on the transformers version that saved the dir).
    """
    files = weight_files(directory)
    if any(f.suffix != ".safetensors" for f in files):
        raise ConversionError(f"{directory}: expected safetensors weights (one of our HF-format dirs)")
    owner, shapes = {}, {}
    for path in files:
        with safe_open(path, "pt") as f:
            for key in f.keys():
                owner[key], shapes[key] = path, f.get_slice(key).get_shape()
    stored = {name: [k for k in owner if k == name or k.endswith("." + name)] for name in tensors}
    absent = [name for name, keys in stored.items() if len(keys) != 1]
    wrong = [f"{name} {tuple(t.shape)} (the checkpoint has {tuple(shapes[stored[name][0]])})"
             for name, t in tensors.items() if name not in absent and list(t.shape) != list(shapes[stored[name][0]])]
    if absent or wrong:
        raise ConversionError(f"{source} does not fit {directory}: keys it lacks {listing(absent) or 'none'}; "
                              f"shape mismatches {listing(wrong) or 'none'}")
    for path in sorted({owner[keys[0]] for keys in stored.values()}):
        state = load_safetensors(path)
        for name, t in tensors.items():
            key = stored[name][0]
            if owner[key] == path:
                state[key] = t.to(state[key].dtype).contiguous()
        save_safetensors(state, path, metadata={"format": "pt"})
