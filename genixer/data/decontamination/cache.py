"""``hash_files``: fingerprints of image files, in parallel, with a cache file reused while a file is unchanged."""
from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from genixer.data.images import IMAGE_ERRORS

from .fingerprints import MAX_PIXELS, WORKERS, Fingerprint, ImageHashes

VERSION = "decontamination-1"   # what a fingerprint is; a cache made otherwise is rebuilt


def _load_cache(path: Path | None) -> dict[str, tuple[int, int, Fingerprint]]:
    """file -> (size, mtime_ns, fingerprint) from a cache file (empty when absent or stale)."""
    if path is None or not path.is_file():
        return {}
    try:
        with np.load(path) as z:
            if str(z["version"]) != VERSION:
                return {}
            return {f: (int(s), int(m), Fingerprint(sha, px, int(h), t)) for f, s, m, sha, px, h, t in zip(
                z["files"].tolist(), z["sizes"], z["mtimes"], z["sha256"].tolist(), z["pixels"].tolist(), z["phash"],
                z["thumbs"])}
    except (OSError, KeyError, ValueError):
        return {}   # a torn or foreign file: rebuilt


def _save_cache(path: Path, entries: dict[str, tuple[int, int, Fingerprint]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(entries)
    prints = ImageHashes.of_fingerprints(files, files, [entries[f][2] for f in files])
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, version=np.array(VERSION), files=np.array(files, dtype=str),
             sizes=np.array([entries[f][0] for f in files], np.int64), mtimes=np.array([entries[f][1] for f in files], np.int64),
             sha256=np.array(prints.sha256, dtype=str), pixels=np.array(prints.pixels, dtype=str), phash=prints.phash,
             thumbs=prints.thumbs)
    os.replace(tmp, path)


def hash_files(files: Iterable[tuple[str, str | Path]], cache: Path | None = None, workers: int | None = None,
               progress: bool = True, desc: str = "fingerprint images", max_pixels: int | None = MAX_PIXELS) -> ImageHashes:
    """Fingerprints of ``(id, path)`` pairs; each file is read once. With ``cache``, a file whose size and mtime
    are unchanged reuses its stored fingerprint, and the cache is rewritten when anything was computed."""
    files = [(str(i), str(Path(p).resolve())) for i, p in files]
    stored, entries, errors, todo = _load_cache(cache), {}, {}, []
    for path in dict.fromkeys(p for _, p in files):
        try:
            st = os.stat(path)
        except OSError as err:
            errors[path] = f"{type(err).__name__}: {err.strerror or err}"
            continue
        old = stored.get(path)
        if old and old[:2] == (st.st_size, st.st_mtime_ns):
            entries[path] = old
        else:
            todo.append((path, st.st_size, st.st_mtime_ns))

    def one(item):
        path, size, mtime = item
        try:
            return path, (size, mtime, Fingerprint.of_file(path, max_pixels))
        except IMAGE_ERRORS as err:
            return path, f"{type(err).__name__}: {err}"

    with ThreadPoolExecutor(workers or WORKERS) as pool, tqdm(total=len(todo), desc=desc, unit="image",
                                                              disable=not progress or None, dynamic_ncols=True) as bar:
        for path, result in pool.map(one, todo):
            if isinstance(result, str):
                errors[path] = result
            else:
                entries[path] = result
            bar.update()
    if cache is not None and (todo or set(entries) != set(stored)):
        _save_cache(cache, entries)

    found = [(i, p) for i, p in files if p in entries]
    return ImageHashes.of_fingerprints([i for i, _ in found], [p for _, p in found], [entries[p][2] for _, p in found],
                                       {i: errors[p] for i, p in files if p in errors})
