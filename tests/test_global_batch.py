"""A global batch size independent of the GPU count (genixer.training.global_batch)."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from conftest import compose_config
from genixer.training.global_batch import accumulation, device_count, trainer_accumulation


def test_exact_division():
    assert accumulation(64, 16, 1) == 4
    assert accumulation(64, 16, 2) == 2
    assert accumulation(64, 16, 4) == 1
    assert accumulation(256, 8, 4, num_nodes=2) == 4


@pytest.mark.parametrize(("args", "message"), [
    ((60, 16, 2), r"global_batch_size=60 .*data\.batch_size=16 x devices=2 x num_nodes=1 = 32 .*global_batch_size=32 or 64"),
    ((16, 16, 2), r"global_batch_size=16 .*= 32 .*global_batch_size=32\b"),
    ((96, 16, 4, 2), r"global_batch_size=96 .*devices=4 x num_nodes=2 = 128"),
])
def test_refuses_what_does_not_divide(args, message):
    with pytest.raises(ValueError, match=message):
        accumulation(*args)


@pytest.mark.parametrize("bad", [0, -4, 2.5, True])
def test_refuses_non_positive_counts(bad):
    with pytest.raises(ValueError, match="positive integer"):
        accumulation(64, 16, bad)


@pytest.mark.parametrize(("devices", "count"), [(2, 2), ([0, 3], 2), ([1], 1), ("3", 3), ("0,1,2", 3)])
def test_devices_as_int_list_or_string(devices, count):
    assert device_count(OmegaConf.create({"accelerator": "gpu", "devices": devices})) == count


@pytest.mark.parametrize("devices", ["auto", -1])
def test_auto_devices_on_cpu_is_one(devices):
    assert device_count(OmegaConf.create({"accelerator": "cpu", "devices": devices})) == 1


def test_auto_devices_on_gpu_counts_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert device_count(OmegaConf.create({"accelerator": "gpu", "devices": "auto"})) == 8
    assert accumulation(256, 16, device_count(OmegaConf.create({"accelerator": "auto", "devices": -1}))) == 2


def test_train_config_resolves_accumulation(tmp_path):
    """What train.run passes to the Trainer, from the composed train config (no DDP launched)."""
    base = [f"paths.output_dir={tmp_path}", "trainer.devices=2", "data.batch_size=16"]
    cfg = compose_config("train", base + ["global_batch_size=64"])
    assert cfg.trainer.accelerator == "cpu"
    assert trainer_accumulation(cfg) == 2
    assert trainer_accumulation(compose_config("train", base)) is None   # the default: no accumulation
    with pytest.raises(ValueError, match=r"global_batch_size=48 .*= 32"):
        trainer_accumulation(compose_config("train", base + ["global_batch_size=48"]))
    with pytest.raises(ValueError, match="both set the accumulation"):
        trainer_accumulation(compose_config("train", base + ["global_batch_size=64", "+trainer.accumulate_grad_batches=2"]))
    cfg = compose_config("train", base + ["global_batch_size=128", "+trainer.num_nodes=2"])
    assert trainer_accumulation(cfg) == 2


def test_run_refuses_before_any_work(tmp_path):
    from genixer.pipelines.train import run

    out = tmp_path / "runs" / "refused"
    cfg = compose_config("train", [f"paths.runs={tmp_path / 'runs'}", f"paths.output_dir={out}", "trainer.devices=2",
                                   "data.batch_size=16", "global_batch_size=40"])
    out.mkdir(parents=True)
    with pytest.raises(ValueError, match="global_batch_size=40"):
        run(cfg)
    assert not out.exists()   # nothing written, the empty run dir removed
