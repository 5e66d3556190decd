"""Hub model ids resolved from the local Hugging Face cache only (nothing is downloaded)."""
from __future__ import annotations

import os
from pathlib import Path


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (``HF_HUB_CACHE``, ``HF_HOME``) rather than at import."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ["HF_HOME"], "hub") if os.environ.get("HF_HOME") else Path(constants.HF_HUB_CACHE)


def cached_snapshot(model_id: str) -> Path:
    """The local snapshot of a hub model id (``org/name``), from the HF cache only: nothing is downloaded."""
    from huggingface_hub import snapshot_download

    cache = hf_cache_dir()
    try:
        return Path(snapshot_download(model_id, cache_dir=cache, local_files_only=True))
    except (OSError, ValueError) as error:  # not cached (LocalEntryNotFoundError), or not a valid repo id
        entry = cache / f"models--{model_id.replace('/', '--')}"
        raise FileNotFoundError(
            f"{model_id!r} is not a local directory ({Path(model_id).absolute()}) and not in the Hugging Face cache: "
            f"looked for {entry}/snapshots/<refs/main> ({type(error).__name__})"
        ) from None
