"""Generator training stages (what learns) and fp32 master weights under a bf16 backbone."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

from genixer.backbones.llava import PARTS
from genixer.training.generator import GeneratorModule
from tests.test_backbone import tiny_codec


class Bf16Tiny:
    """The tiny backbone loaded in bfloat16, as PretrainedLlava(dtype=bfloat16) would."""

    def __init__(self, backbone):
        self.inner = backbone

    def build(self, codec):
        return self.inner.build(codec).to(torch.bfloat16)

    def save(self, *args):
        return self.inner.save(*args)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return tiny_codec()


def configured(backbone, codec, **kwargs) -> GeneratorModule:
    module = GeneratorModule(backbone, codec, torch.optim.SGD, **kwargs)
    module.configure_model()
    return module


def base(module):
    return module.model.get_base_model() if module.stage == "lora" else module.model


def count(module, part: str, trainable: bool | None = None) -> int:
    return sum(p.numel() for n, p in base(module).named_parameters()
               if n.startswith(PARTS[part]) and (trainable is None or p.requires_grad == trainable))


def n_trainable(module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_projector_stage_trains_exactly_the_projector(tiny):
    module = configured(*tiny, stage="projector")
    assert n_trainable(module) == count(module, "projector") > 0
    assert count(module, "vision", trainable=True) == count(module, "language", trainable=True) == 0


def test_full_stage_trains_everything_but_the_vision_tower(tiny):
    module = configured(*tiny, stage="full")
    total = sum(p.numel() for p in module.parameters())
    assert n_trainable(module) == total - count(module, "vision") == count(module, "projector") + count(module, "language")
    assert count(module, "vision", trainable=True) == 0


def test_lora_stage_trains_projector_and_language_adapters_only(tiny):
    module = configured(*tiny, stage="lora", lora={"r": 4})
    named = dict(base(module).named_parameters())
    adapters = {n: p for n, p in named.items() if ".lora_" in n}
    assert adapters and all(n.startswith("model.language_model.") for n in adapters)  # not the vision q/k/v
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in adapters} == set(module.lora["target_modules"])
    trained = {n for n, p in named.items() if p.requires_grad}
    assert trained == set(adapters) | {n for n in named if n.startswith(PARTS["projector"])}
    assert n_trainable(module) == count(module, "projector") + sum(p.numel() for p in adapters.values())
    assert count(module, "vision", trainable=True) == 0
    assert not any(p.requires_grad for n, p in named.items() if n.startswith(PARTS["language"]) and ".lora_" not in n)


def test_lora_export_merges_into_a_plain_llava_checkpoint(tiny, tmp_path):
    from transformers import LlavaForConditionalGeneration

    backbone, codec = tiny
    module = configured(backbone, codec, stage="lora", lora={"r": 2})
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # B starts at 0: make the adapters count
    ids, _ = codec.encode_train([(codec.human_message("Hello."), "Hi there.")])
    pixels = codec.image(Image.new("RGB", (32, 32), (10, 200, 30)))[None]
    module.model.eval()
    with torch.no_grad():
        expected = module.model(input_ids=ids[None], pixel_values=pixels).logits
    module.export(tmp_path)
    reloaded = LlavaForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert not any("lora" in n or "base_layer" in n for n in reloaded.state_dict())
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids[None], pixel_values=pixels).logits, expected, atol=1e-4)


def test_bad_stage_options_are_refused(tiny):
    with pytest.raises(ValueError, match="stage"):
        GeneratorModule(*tiny, torch.optim.SGD, stage="vision")
    with pytest.raises(ValueError, match="language"):
        GeneratorModule(*tiny, torch.optim.SGD, stage="lora", trainable=("projector", "language"))


def test_bf16_backbone_keeps_fp32_master_weights(tiny):
    backbone, codec = tiny
    module = configured(Bf16Tiny(backbone), codec, stage="projector")
    dtypes = {n: p.dtype for n, p in module.model.named_parameters()}
    assert all(d == torch.float32 for n, d in dtypes.items() if n.startswith(PARTS["projector"]))
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if not n.startswith(PARTS["projector"]))  # frozen: bf16
    assert module.load_dtype == torch.bfloat16

    # bf16 compute under autocast (what bf16-mixed does): gradients land on the fp32 masters
    ids, labels = codec.encode_train([(codec.human_message("Hello."), "Hi there.")])
    pixels = codec.image(Image.new("RGB", (32, 32), (10, 200, 30)))[None].to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = module.model(input_ids=ids[None], pixel_values=pixels, labels=labels[None]).loss
    loss.backward()
    trained = [p for p in module.model.parameters() if p.requires_grad]
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and p.grad.isfinite().all() for p in trained)

    # an update far below bf16's resolution at 1.0 (2**-8 just below it): fp32 keeps it, bf16 loses it
    master = trained[0]
    bf16 = torch.nn.Parameter(torch.ones_like(master, dtype=torch.bfloat16))
    with torch.no_grad():
        master.fill_(1.0)
    for p in (master, bf16):
        p.grad = torch.ones_like(p)
    for p in (master, bf16):
        torch.optim.SGD([p], lr=1e-4).step()
    assert torch.all(master < 1.0) and torch.allclose(master, torch.full_like(master, 1 - 1e-4))
    assert torch.all(bf16 == 1.0)  # the update was lost: what happened before the fix


def test_export_saves_in_the_load_dtype(tiny, tmp_path):
    from transformers import LlavaForConditionalGeneration

    backbone, codec = tiny
    module = configured(Bf16Tiny(backbone), codec, stage="full")
    assert any(p.dtype == torch.float32 for p in module.model.parameters())
    module.export(tmp_path)
    reloaded = LlavaForConditionalGeneration.from_pretrained(tmp_path, dtype="auto")
    assert {p.dtype for p in reloaded.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize("stage", ["full", "lora"])
def test_activation_checkpointing_stores_fewer_activations_and_changes_no_gradient(tiny, stage):
    backbone, codec = tiny
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    ids, labels = codec.encode_train([(codec.human_message("What is it?"), "A red thing.")])
    batch = {"input_ids": ids[None], "labels": labels[None], "attention_mask": torch.ones_like(ids)[None],
             "pixel_values": codec.image(image)[None]}
    grads, stored = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        module = GeneratorModule(backbone, codec, torch.optim.SGD, stage=stage, activation_checkpointing=checkpointing)
        module.configure_model()
        module.train()
        saved = []   # what autograd keeps for backward
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            loss = module.model(**batch).loss
        loss.backward()
        stored.append(sum(saved))
        grads.append({n: p.grad.clone() for n, p in module.named_parameters() if p.requires_grad})
    assert stored[1] < stored[0] / 2   # the decoder layers' activations are recomputed in backward instead
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


@pytest.mark.parametrize("stage", ["full", "lora"])
def test_export_of_gathered_weights_equals_the_export_of_the_model(tiny, stage, tmp_path):
    """A sharded run exports the weights gathered from its ranks into a fresh model: the same checkpoint."""
    from safetensors.torch import load_file

    module = configured(*tiny, stage=stage)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(0.01)   # trained: differs from a fresh build
    state = {k: v.clone() for k, v in module.model.state_dict().items()}
    module.export(tmp_path / "gathered", state=state)
    module.export(tmp_path / "own")
    gathered, own = (load_file(tmp_path / d / "model.safetensors") for d in ("gathered", "own"))
    assert gathered.keys() == own.keys() and all(torch.equal(gathered[k], own[k]) for k in own)
    with pytest.raises(RuntimeError, match="Missing key"):
        module.export(tmp_path / "partial", state=dict(list(state.items())[:-1]))


def test_sharded_presets_wrap_the_backbones_decoder_layers(tmp_path):
    from types import SimpleNamespace

    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy

    from conftest import compose_config
    from genixer.backbones.llava import TinyLlava
    from genixer.training import sharding
    from tests.test_backbone import CONV, TINY

    backbone = TinyLlava(CONV, **TINY)
    fsdp = sharding.strategy(compose_config("train", [f"paths.output_dir={tmp_path}", "trainer=fsdp"]), backbone)
    assert isinstance(fsdp, FSDPStrategy)
    wrapped = {c.__name__ for c in fsdp.kwargs["auto_wrap_policy"]._module_classes}
    assert wrapped == {"LlamaDecoderLayer", "CLIPEncoderLayer"}   # each decoder layer one FSDP unit
    mixed = fsdp.mixed_precision   # Lightning's bf16 gathers, but buffers (RoPE's frequencies) kept fp32
    assert (mixed.param_dtype, mixed.reduce_dtype, mixed.buffer_dtype) == (torch.bfloat16, torch.bfloat16, torch.float32)
    accumulating = sharding.strategy(compose_config("train", [f"paths.output_dir={tmp_path}", "trainer=fsdp"]), backbone, 2)
    assert accumulating.mixed_precision.param_dtype == torch.float32   # bf16 grads would not accumulate (torch >= 2.10)
    assert accumulating.mixed_precision.buffer_dtype == torch.float32
    zero3 = sharding.strategy(compose_config("train", [f"paths.output_dir={tmp_path}", "trainer=deepspeed_zero3"]), backbone)
    assert isinstance(zero3, DeepSpeedStrategy) and zero3.zero_stage_3
    with zero3.model_sharded_context():   # the model is built whole (HF initialises it), partitioned afterwards
        assert torch.nn.Embedding(8, 4, padding_idx=3).weight.shape == (8, 4)
    assert sharding.strategy(compose_config("train", [f"paths.output_dir={tmp_path}", "trainer=ddp"]), backbone) == "ddp"
    plain = SimpleNamespace(strategy=SimpleNamespace(model=None), is_global_zero=True)
    assert sharding.full_state_dict(plain, None) is None   # unsharded: the module's own model is exported


def test_zero3_offload_steps_with_deepspeeds_cpu_adam_and_the_same_hyperparameters(tmp_path):
    import functools

    from deepspeed.ops.adam import DeepSpeedCPUAdam

    from conftest import compose_config
    from genixer.backbones.llava import TinyLlava
    from genixer.training import sharding
    from genixer.training.optim import offloaded
    from tests.test_backbone import CONV, TINY

    def preset(*overrides):
        cfg = compose_config("train", [f"paths.output_dir={tmp_path}", "trainer=deepspeed_zero3", *overrides])
        return sharding.strategy(cfg, TinyLlava(CONV, **TINY))

    adamw = functools.partial(torch.optim.AdamW, lr=2e-5, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    assert offloaded(adamw, preset()) is adamw   # states on the GPU: torch's fused AdamW
    cpu = offloaded(adamw, preset("trainer.strategy.offload_optimizer=true"))
    assert cpu.func is DeepSpeedCPUAdam
    assert cpu.keywords == {"adamw_mode": True, "lr": 2e-5, "betas": (0.9, 0.95), "weight_decay": 0.1}
    assert offloaded(adamw, None) is adamw and offloaded(adamw, "ddp") is adamw
    with pytest.raises(ValueError, match="AdamW"):
        offloaded(functools.partial(torch.optim.SGD, lr=0.1), preset("trainer.strategy.offload_optimizer=true"))
