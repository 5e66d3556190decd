"""The training loop: mid-epoch resume (a run stopped after any step and re-run with ``ckpt_path=last`` trains the
same batches in the same order as one that never stopped, to the same losses and weights) and validation."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from conftest import compose_config, world_overrides
from genixer.data.batching import LengthGroupedSampler, ResumableLoader, ShuffledSampler
from genixer.pipelines import train


def test_shuffled_sampler_is_the_seeded_dataloader_order_split_over_ranks():
    plain = list(DataLoader(range(23), batch_size=1, shuffle=True, generator=torch.Generator().manual_seed(7 + 2)))
    assert list(ShuffledSampler(23, seed=7, epoch=2)) == [int(x) for x in plain]
    ranks = [list(ShuffledSampler(23, seed=7, epoch=2, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(r) == 7 for r in ranks) and len(set().union(*ranks)) == 21   # equal shares, disjoint
    assert list(ShuffledSampler(23, seed=7, epoch=3)) != list(ShuffledSampler(23, seed=7, epoch=2))


@pytest.mark.parametrize("sampler", [ShuffledSampler(20, seed=1, epoch=0),
                                     LengthGroupedSampler(list(range(20)), batch_size=4, seed=1, epoch=0)])
def test_a_resumed_loader_skips_the_trained_batches_once(sampler):
    loader = ResumableLoader(range(20), batch_size=4, sampler=sampler, progress=lambda: 3)
    full = [b.tolist() for b in loader]
    assert loader.state_dict() == {"epoch": 0, "batches": 3} and len(full) == len(loader) == 5
    loader.load_state_dict({"epoch": 0, "batches": 3})
    assert [b.tolist() for b in loader] == full[3:]   # this pass only
    assert [b.tolist() for b in loader] == full
    loader.load_state_dict({"epoch": 0, "batches": 5})   # saved at the epoch's end: nothing to skip here
    assert [b.tolist() for b in loader] == full
    with pytest.raises(RuntimeError, match="epoch 1"):
        loader.load_state_dict({"epoch": 1, "batches": 2})
    with pytest.raises(TypeError, match="EpochSampler"):
        ResumableLoader(range(20), batch_size=4, progress=lambda: 0)


class Record(L.Callback):
    """Appends (global step, loss) of every batch to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps([trainer.global_step, trainer.current_epoch, batch_idx, float(outputs["loss"])]) + "\n")


class Stop(L.Callback):
    """Fails at the start of step ``at`` (the checkpoint of step ``at`` is written by then): a killed run."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError(f"stopped at step {self.at}")


def test_training_resumes_mid_epoch_to_the_same_losses_and_weights(tmp_path, small_world, tiny_vision):
    world = world_overrides(small_world)
    vision = tiny_vision

    def run(name: str, *extra: str):
        out = tmp_path / name
        cfg = compose_config("train", [
            f"paths.output_dir={out}", "experiment=mini_world_cpu_generator", f"backbone.vision_init={vision}", "debug=fast",
            *world, "trainer.max_steps=10", "+trainer.limit_train_batches=4", "callbacks=default", "~callbacks.lr",
            "callbacks.checkpoint.every_n_train_steps=1", f"+callbacks.record={{_target_: test_training_loop.Record, path: {out}.jsonl}}",
            *extra])
        return out, cfg

    straight, cfg = run("straight")
    train.run(cfg)
    stopped, cfg = run("stopped", "+callbacks.stop={_target_: test_training_loop.Stop, at: 6}")   # epoch 1, after 2 of 4 batches
    with pytest.raises(RuntimeError, match="stopped at step 6"):
        train.run(cfg)
    assert (stopped / "lightning" / "last.ckpt").exists() and not (stopped / "manifest.json").exists()
    _, cfg = run("stopped")
    assert train.run(cfg)["steps"] == 10

    expected = [json.loads(line) for line in Path(f"{straight}.jsonl").read_text().splitlines()]
    seen = [json.loads(line) for line in Path(f"{stopped}.jsonl").read_text().splitlines()]
    assert [r[0] for r in seen] == list(range(1, 7)) + list(range(7, 11))   # no step twice, none missed
    assert seen == expected   # same epoch, batch index and loss at every step
    weights = [load_file(next((d / "checkpoint").glob("*.safetensors"))) for d in (straight, stopped)]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_validation_holds_out_whole_images_and_reports_its_loss(tmp_path, small_world, tiny_vision):
    world = world_overrides(small_world)
    vision = tiny_vision
    cfg = compose_config("train", [f"paths.output_dir={tmp_path / 'g'}", "experiment=mini_world_cpu_generator",
                                   f"backbone.vision_init={vision}", "debug=fast", *world, "data.val_fraction=0.25",
                                   "+trainer.val_check_interval=3", "+trainer.limit_val_batches=2",
                                   "callbacks=generation_metric", "callbacks.generation_metric.images=2",
                                   "callbacks.generation_metric.max_new_tokens=8"])
    datamodule, _ = train.assemble(cfg, instantiate(cfg.backbone))
    fit, val = datamodule.splits
    images = lambda items: {ann["image"] for _, ann in items}  # noqa: E731
    assert val and not images(fit) & images(val) and len(fit) + len(val) == len(datamodule.mixture.items())
    assert round(0.25 * len(images(fit) | images(val))) == len(images(val)) and datamodule.splits == (fit, val)
    metrics = train.run(cfg)
    assert metrics["steps"] == 3 and metrics["val/loss"] > 0   # validated at step 3, in the manifest
    assert {"val/common_vqa/accuracy", "val/common_vqa/parsed", "val/rec/accuracy", "val/rec/parsed"} <= set(metrics)
    with pytest.raises(ValueError, match="val_fraction"):
        train.assemble(compose_config("train", [*world, "data.val_fraction=1.0"]), instantiate(cfg.backbone))


def test_last_means_this_runs_own_last_checkpoint_if_it_left_one(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    callbacks = [L.Callback(), ModelCheckpoint(dirpath=tmp_path / "lightning", save_last=True)]
    assert train.resume_from("last", callbacks) is None   # a fresh run starts over, without Lightning's warning
    assert train.resume_from("last", [L.Callback()]) is None   # no checkpoints configured
    (tmp_path / "lightning").mkdir()
    (tmp_path / "lightning" / "last.ckpt").touch()
    assert train.resume_from("last", callbacks) == str(tmp_path / "lightning" / "last.ckpt")
    assert train.resume_from("other.ckpt", callbacks) == "other.ckpt" and train.resume_from(None, callbacks) is None
