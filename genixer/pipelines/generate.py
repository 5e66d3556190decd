"""Generation pipeline: a generator checkpoint + query images -> parsed, exported samples."""
from __future__ import annotations

import logging
import time
from collections import Counter

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from genixer.generation.queries import PromptCollator, PromptDataset, load_queries
from genixer.generation.writer import ShardWriter, merge, write_exports
from genixer.pipelines import rundir

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = rundir.start(cfg)
    task = instantiate(cfg.task)
    module = instantiate(cfg.module, generation=OmegaConf.to_container(cfg.generation))
    module.codec = module.backbone.codec()
    queries = load_queries(cfg.queries)
    dataset = PromptDataset(queries, cfg.image_root, task, module.codec, cfg.samples_per_image, cfg.seed)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        collate_fn=PromptCollator(module.codec.tokenizer.pad_token_id, cfg.seed),
    )
    trainer = instantiate(cfg.trainer, callbacks=[ShardWriter(out)], logger=False, default_root_dir=str(out))
    started = time.time()
    trainer.predict(module, loader, return_predictions=False)
    seconds = time.time() - started
    if not trainer.is_global_zero:
        return {}
    provenance = {"generator": str(cfg.module.backbone.path), "generation": OmegaConf.to_container(cfg.generation),
                  "config_hash": rundir.config_hash(cfg)}
    rows, counts = merge(out, task, provenance)
    exports = write_exports(out, rows)
    tokens = sum(r.get("new_tokens", 0) for r in rows)
    speed = {"seconds": round(seconds, 2), "samples_per_s": round(len(rows) / seconds, 2), "new_tokens_per_s": round(tokens / seconds, 1)}
    rundir.write_manifest(
        out, cfg, "generate", generator=str(cfg.module.backbone.path), task=task.name, queries=str(cfg.queries),
        counts=counts, throughput=speed, exports=exports, templates=dict(Counter(r["template_id"] for r in rows)),
    )
    log.info("%s: %s -> %s", task.name, counts, out)
    return {**counts, **speed}
