"""The generator LightningModule: trains Genixer_L / Genixer_S (and judges fine-tuned from them)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.strategies import FSDPStrategy
import torch

from genixer.backbones.codec import Codec
from genixer.backbones.llava import parts
from genixer.backbones.protocol import Backbone
from genixer.training import optim

# Training stages -> the parts that learn in full (the vision tower never does). ``lora`` adds low-rank
# adapters on the language model's linear layers (its base weights stay frozen) to the projector.
STAGES = {
    "projector": ("projector",),  # LLaVA pre-training (feature alignment)
    "full": ("projector", "language"),  # LLaVA / Genixer instruction tuning
    "lora": ("projector",),  # + LoRA adapters on the language model
}
LORA_DEFAULTS = {
    "r": 8, "alpha": 16, "dropout": 0.05,
    "target_modules": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
}


class GeneratorModule(L.LightningModule):
    """A ``backbone`` and its ``codec`` (built once by the pipeline, shared with the data module).

    The model is built late (``configure_model``) for sharded strategies. ``stage`` picks what learns,
    as in the LLaVA / Genixer recipes; the vision tower is always frozen:

    * ``projector``: only the multimodal projector (LLaVA pre-training);
    * ``full``: projector + language model (instruction tuning);
    * ``lora``: projector + LoRA adapters (``lora``: r, alpha, dropout, target_modules) on the language
      model's linear layers only; ``export`` merges the adapters, so the checkpoint stays a plain llava-hf dir.

    ``trainable`` (parts: ``vision``, ``projector``, ``language``) overrides the stage's parts for
    custom recipes. ``activation_checkpointing``: decoder layers recompute their activations in backward
    (HF gradient checkpointing, non-reentrant: frozen inputs and LoRA need nothing more).

    Mixed precision: the backbone may load in a low precision (``backbone.dtype: bfloat16``) to save
    memory, but the *trainable* parameters are cast to float32 after freezing, so the optimizer keeps
    fp32 master weights (an update of 1e-4 on a weight of 1.0 is lost in bf16, whose resolution there
    is 2**-7). Frozen parts keep the load dtype. Compute runs in bf16 through Lightning's autocast
    (``trainer.precision: bf16-mixed``): a bf16 backbone therefore needs a ``*-mixed`` precision
    (``32-true`` would multiply bf16 activations by fp32 weights). ``export`` saves in the load dtype
    unless given one (``save_dtype``).
    """

    def __init__(self, backbone: Backbone, codec: Codec, optimizer: Callable, scheduler: Callable | None = None,
                 stage: str = "full", trainable: tuple[str, ...] | None = None, lora: dict | None = None,
                 weight_decay: float = 0.0, activation_checkpointing: bool = False) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose from {sorted(STAGES)}")
        self.backbone, self.codec = backbone, codec
        self.optimizer, self.scheduler, self.weight_decay = optimizer, scheduler, weight_decay
        self.stage = stage
        self.trainable = tuple(trainable) if trainable is not None else STAGES[stage]
        if stage == "lora" and "language" in self.trainable:
            raise ValueError("stage 'lora' trains adapters on the language model; drop 'language' from trainable")
        unknown_lora = set(lora or {}) - set(LORA_DEFAULTS)
        if unknown_lora:
            raise ValueError(f"unknown lora options {sorted(unknown_lora)}; choose from {sorted(LORA_DEFAULTS)}")
        self.lora = {**LORA_DEFAULTS, **(lora or {})}
        self.activation_checkpointing = activation_checkpointing
        self.model = None
        self.load_dtype: torch.dtype | None = None

    def export(self, directory: str | Path, dtype: str | None = None, state: dict | None = None) -> None:
        """A plain HF checkpoint dir: model (safetensors), tokenizer, processor, template.

        LoRA adapters are merged into the language model first (in place: the module keeps the merged model).
        ``state``: the whole weights gathered from a sharded run (genixer.training.sharding), loaded into a
        fresh unsharded model, since this rank's own model holds only its shard.
        """
        if state is not None:
            whole = self.backbone.build(self.codec)
            if self.stage == "lora":
                whole = self._add_lora(whole, parts(whole.config)["language"])
            whole.load_state_dict(state)
        else:
            whole = self.model
        if self.stage == "lora" and hasattr(whole, "merge_and_unload"):
            whole = whole.merge_and_unload()
        if state is None:
            self.model = whole
        target = getattr(torch, dtype) if dtype else self.load_dtype
        model = whole.to(target) if target else whole
        self.backbone.save(model, self.codec, directory)

    def configure_model(self) -> None:
        if self.model is not None:
            return
        model = self.backbone.build(self.codec)
        self.load_dtype = next(model.parameters()).dtype
        named = parts(model.config)
        unknown = set(self.trainable) - set(named)
        if unknown:
            raise ValueError(f"unknown trainable parts {sorted(unknown)}; choose from {sorted(named)}")
        prefixes = tuple(p for part in self.trainable for p in named[part])
        if self.stage == "lora":
            model = self._add_lora(model, named["language"])
        base = model.get_base_model() if self.stage == "lora" else model
        for name, param in base.named_parameters():
            param.requires_grad_(name.startswith(prefixes) or ".lora_" in name)
        for param in model.parameters():  # fp32 master weights for what learns
            if param.requires_grad and param.dtype != torch.float32:
                param.data = param.data.float()
        if self.activation_checkpointing:   # each decoder layer's activations recomputed in backward, not stored
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = model

    def _add_lora(self, model, language: tuple[str, ...]):
        """LoRA adapters on the language model's ``target_modules`` only (the vision tower has q/k/v_proj too)."""
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:  # pragma: no cover
            raise ImportError("module.stage=lora needs peft (pip install peft)") from err
        scope = "|".join(p.rstrip(".").replace(".", r"\.") for p in language)
        names = "|".join(self.lora["target_modules"])
        config = LoraConfig(r=self.lora["r"], lora_alpha=self.lora["alpha"], lora_dropout=self.lora["dropout"],
                            target_modules=rf"(?:{scope})\..*\.(?:{names})", bias="none")
        return get_peft_model(model, config)

    def batch_loss(self, batch: dict) -> torch.Tensor:
        """The mean loss over the batch's supervised tokens, padded or packed (genixer.data.packing).

        ``use_cache=False``: a training forward needs no KV cache, and with one transformers ignores the
        position-id restarts of packed rows (and would let their samples attend each other).
        """
        packed = "sample_lengths" in batch   # counted by the throughput meter only, not a model input
        attention = self.model.config.text_config._attn_implementation or ""
        if packed and "flash" in attention and len(batch["input_ids"]) > 1:
            raise ValueError(f"{attention} reads packed samples' boundaries from position_ids only with one row per "
                             "batch: use data.batch_size=1, or sdpa / eager attention")
        inputs = {k: v for k, v in batch.items() if k != "sample_lengths"}
        return self.model(**inputs, use_cache=False).loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.batch_loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss = self.batch_loss(batch)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["input_ids"].shape[0])

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if gradient_clip_val and isinstance(self.trainer.strategy, FSDPStrategy):   # the norm over every shard
            self.trainer.strategy.model.clip_grad_norm_(gradient_clip_val)
        else:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def configure_optimizers(self):
        return optim.configure(self, self.optimizer, self.scheduler, self.weight_decay)
