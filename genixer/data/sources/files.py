"""Reading annotation files with errors that name the file and the field."""
from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


class AnnotationError(ValueError):
    """A missing or malformed annotation file, naming the file and what is wrong."""


def read_json(path: str | Path) -> object:
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: not valid JSON ({err})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-empty line."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: file not found")
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as err:
                    raise AnnotationError(f"{path}:{n}: not valid JSON ({err})") from None


def field(obj: dict, name: str, where: str):
    """``obj[name]`` or an AnnotationError naming ``where`` and the field."""
    try:
        return obj[name]
    except (KeyError, TypeError):
        raise AnnotationError(f"{where}: missing field '{name}'") from None


def image_path(root: str | Path, pattern: str, where: str, **ids: object) -> Path:
    """``root / pattern.format(**ids)``; digit-string ids also fit integer formats like ``{image_id:012d}``."""
    try:
        name = pattern.format(**ids)
    except KeyError as err:
        raise AnnotationError(f"{where}: image pattern {pattern!r} uses unknown field {err}") from None
    except ValueError:
        # GQA-style ids are strings; retry with the numeric ones as ints for integer formats.
        as_int = {k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in ids.items()}
        try:
            name = pattern.format(**as_int)
        except ValueError as err:
            raise AnnotationError(f"{where}: image pattern {pattern!r} does not fit {ids} ({err})") from None
    return Path(root) / name


def check_image_root(images: Iterable[str | Path], root: str | Path, source: str | Path, first: int = 3) -> None:
    """The first ``first`` image paths (relative to ``root``, or absolute) exist; else an AnnotationError
    naming the file, the image and the root tried (a wrong root fails before any training)."""
    root = Path(root)
    for k, image in enumerate(images):
        if k >= first:
            return
        if not (root / image).is_file():
            raise AnnotationError(f"{source}: image {str(image)!r} not found under image_root {root} "
                                  f"(tried {root / image}): set image_root to the folder the file's image paths "
                                  "are relative to")


def progress(records: Iterable[T], path: str | Path) -> Iterable[T]:
    """A bar on stderr over the records of an annotation file whose image headers a load reads
    (thousands of file opens); off when stderr is not a terminal."""
    return tqdm(records, desc=Path(path).name, unit="rec", file=sys.stderr, disable=None, dynamic_ncols=True)


class ImageSizes:
    """(width, height) of image files, read from their headers once per path."""

    def __init__(self) -> None:
        self._sizes: dict[Path, tuple[int, int]] = {}

    def __call__(self, path: str | Path, where: str) -> tuple[int, int]:
        path = Path(path)
        if path not in self._sizes:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as im:  # lazy: decodes the header only
                    self._sizes[path] = im.size
            except FileNotFoundError:
                raise AnnotationError(f"{where}: image not found: {path}") from None
            except (UnidentifiedImageError, OSError) as err:
                raise AnnotationError(f"{where}: unreadable image {path} ({err})") from None
        return self._sizes[path]
