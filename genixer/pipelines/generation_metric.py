"""A generation metric in the validation loop: what the model writes, graded as the evaluation stage grades it.

Beside the held-out loss, every validation (``every_n_validations``) decodes one greedy sample for each of the
first ``images`` query images per task, parses it with the task (as ``generate.py`` does) and grades the parsed
samples with ``oracle`` (the evaluation stage's grader, e.g. the mini world's strict oracle on its val split).
Logged per task: ``val/<task>/accuracy`` (correct among parsed, the evaluation tables' accuracy) and
``val/<task>/parsed`` (parsed among all). Ranks split the prompts and sum their counts.

Each rank decodes on its own replica, so the metric needs whole parameters on every rank: one device, DDP or
DeepSpeed ZeRO-2. Under FSDP or ZeRO-3 it refuses to start (evaluate the exported checkpoint instead).
It lives with the pipelines, not in the training stage: it joins the generation loop's prompts and parsing to
the evaluation stage's grader, as generate.py + evaluate.py do.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

from genixer.generation.queries import PromptCollator, PromptDataset, image_root_for, load_queries
from genixer.generation.records import finish_row
from genixer.tasks import Task


class GenerationMetric(Callback):
    def __init__(self, tasks: Mapping[str, Task], queries: str, oracle: Callable, images: int = 32,
                 max_new_tokens: int = 64, batch_size: int = 8, every_n_validations: int = 1,
                 image_root: str | None = None) -> None:
        if not tasks:
            raise ValueError("generation metric: no tasks")
        if images < 1 or batch_size < 1 or every_n_validations < 1 or max_new_tokens < 1:
            raise ValueError("generation metric: images, batch_size, every_n_validations and max_new_tokens must be >= 1")
        self.tasks, self.queries, self.image_root = dict(tasks), queries, image_root
        self.make_oracle, self.oracle, self.loaded = oracle, None, None  # oracle and queries: read at first use
        self.images, self.max_new_tokens, self.batch_size, self.every = images, max_new_tokens, batch_size, every_n_validations
        self.validations = 0

    def on_fit_start(self, trainer, pl_module) -> None:
        strategy = trainer.strategy
        if isinstance(strategy, FSDPStrategy) or (isinstance(strategy, DeepSpeedStrategy)
                                                  and strategy.config.get("zero_optimization", {}).get("stage") == 3):
            raise ValueError("the generation metric decodes on each rank's own replica: it needs whole parameters "
                             "(one device, DDP or ZeRO-2), not FSDP / ZeRO-3; evaluate the exported checkpoint instead")

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self.validations += 1
        if (self.validations - 1) % self.every:
            return
        if self.oracle is None:
            self.oracle = self.make_oracle()
        for name, task in self.tasks.items():
            counts = torch.tensor(self.grade(trainer, pl_module, task), dtype=torch.float64, device=pl_module.device)
            correct, parsed, total = trainer.strategy.reduce(counts, reduce_op="sum").tolist()
            pl_module.log(f"val/{name}/accuracy", correct / parsed if parsed else 0.0, rank_zero_only=True)
            pl_module.log(f"val/{name}/parsed", parsed / total if total else 0.0, rank_zero_only=True)

    @torch.no_grad()
    def grade(self, trainer, pl_module, task: Task) -> tuple[int, int, int]:
        """(correct, parsed, samples) of this rank's share of the prompts."""
        codec, model = pl_module.codec, pl_module.model
        if self.loaded is None:
            self.loaded = load_queries(self.queries)[:self.images]
        dataset = PromptDataset(self.loaded, image_root_for(self.queries, self.image_root), task, codec, 1, 0)
        mine = list(range(len(dataset)))[trainer.global_rank::trainer.world_size]
        collate, tok = PromptCollator(codec.tokenizer.pad_token_id), codec.tokenizer
        dtype = next(model.parameters()).dtype
        correct = parsed = total = 0
        for start in range(0, len(mine), self.batch_size):
            batch = collate([dataset[i] for i in mine[start:start + self.batch_size]])
            rows = list(batch["errors"])
            if batch["meta"]:
                ids = batch["input_ids"].to(pl_module.device)
                with trainer.precision_plugin.forward_context():
                    out = model.generate(input_ids=ids, attention_mask=batch["attention_mask"].to(pl_module.device),
                                         pixel_values=batch["pixel_values"].to(pl_module.device, dtype), do_sample=False,
                                         max_new_tokens=self.max_new_tokens, pad_token_id=tok.pad_token_id,
                                         eos_token_id=tok.eos_token_id)
                rows += [{**meta, "text": codec.decode(new)} for meta, new in zip(batch["meta"], out[:, ids.shape[1]:].cpu())]
            for row in rows:
                row = finish_row(row, task, {})
                total += 1
                if row["status"] == "ok":
                    parsed += 1
                    correct += bool(self.oracle.check(row)[0])
        return correct, parsed, total
