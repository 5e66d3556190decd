"""Training throughput: tokens/s per device and model FLOPs utilization (MFU), every N steps.

``Throughput`` (a Lightning callback, ``conf/callbacks/default.yaml``) times each training batch,
counts its real tokens and converts them to model FLOPs with ``flops_per_step``; every
``every_n_steps`` batches it logs, over the last ``every_n_steps`` of them (a window):

- ``train/tokens_per_s``: real (non-padding) tokens per second on this device (progress bar + loggers);
- ``train/tokens_per_s_global``: the same times the world size (only when there are several ranks);
- ``train/mfu``: achieved model FLOPs/s on this device / the device's peak (only when the peak is known).

The run's summary (``Throughput.summary``) goes into the train manifest's ``metrics["throughput"]``.
"""
from __future__ import annotations

import logging
import time
from collections import deque

import lightning as L
import torch

log = logging.getLogger(__name__)

# Peak dense (no sparsity) bf16 tensor-core TFLOPs per device, from NVIDIA's datasheets (the datasheets
# quote "with sparsity" figures: dense is half). H100/H200 SXM: 1,979 sparse -> 989.4 dense (132 SMs x
# 1.83 GHz x 4096 FLOPs/clock); H100 PCIe: 1,513 -> 756; H100 NVL: 1,671 -> 835; A100: 312 dense.
# Matched against torch.cuda.get_device_name, first match wins (more specific names first).
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
)
GATED_MLP = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3"}  # 3 MLP matrices


def peak_tflops_of(device_name: str) -> float | None:
    """A device's peak dense bf16 TFLOPs from ``PEAK_TFLOPS`` (None when not listed)."""
    return next((peak for key, peak in PEAK_TFLOPS if key.lower() in device_name.lower()), None)


def _get(config, key: str, default=None):
    value = getattr(config, key, None)
    return default if value is None else value


def language_params(text) -> int:
    """Weight-matrix parameters of a decoder LM a token passes through: per layer Q, K, V, O (grouped-query
    K/V included) and the MLP (3 matrices when gated, else 2), plus the LM head (logits for every position).
    Embedding lookups, norms and biases are not matmuls and are left out (as in PaLM / Megatron)."""
    h, layers, heads = text.hidden_size, text.num_hidden_layers, text.num_attention_heads
    head_dim = _get(text, "head_dim", h // heads)
    q, kv = heads * head_dim, _get(text, "num_key_value_heads", heads) * head_dim
    mlp = (3 if getattr(text, "model_type", "") in GATED_MLP else 2) * h * text.intermediate_size
    return layers * (h * q + 2 * h * kv + q * h + mlp) + h * text.vocab_size


def vision_params(vision) -> int:
    """Weight-matrix parameters of a ViT (CLIP) a patch passes through: per layer Q, K, V, O and a 2-matrix
    MLP (the patch embedding is counted apart, see ``flops_per_step``)."""
    h = vision.hidden_size
    return vision.num_hidden_layers * (4 * h * h + 2 * h * vision.intermediate_size)


def flops_per_step(model_config, tokens: int, images: int, seq_len: float, vision_trained: bool = False) -> float:
    """Model FLOPs of one training step of a LLaVA model (``LlavaConfig``-like: ``text_config``,
    ``vision_config``) on ``tokens`` real tokens (image tokens included, as they are expanded in
    ``input_ids``) and ``images`` images.

    Sources: Chowdhery et al. 2022 (PaLM), appendix B: model FLOPs per token = 6N + 12·L·H·Q·T; Narayanan
    et al. 2021 (Megatron-LM), section 5.1 (the same terms, the logit layer included). A matmul with N
    weights costs 2N FLOPs per token forward and 4N backward (activation + weight gradients):

    - language model (N_lm = ``language_params``: layers' Q, K, V, O, MLP matrices and the LM head):
      ``6·N_lm·tokens`` — the PaLM/Megatron convention counts 6N for every token through the LM, also when
      the LM is frozen and only activation gradients flow (4N of real work);
    - its attention, QKᵀ and AV, forward + backward: ``12·L·(heads·head_dim)·tokens·seq_len`` where
      ``tokens·seq_len`` = Σ over sequences of length² (``seq_len``: the token-weighted mean context,
      Σtᵢ²/Σtᵢ; the padded length for a batch of full sequences). Like PaLM, causal masking is not halved;
    - projector (linear_1: vision hidden -> hidden, linear_2: hidden -> hidden), trained:
      ``6·N_proj·images·image_tokens`` (image_tokens: patches per image, ``num_image_tokens``);
    - vision tower (frozen: forward only, ×1; trained: ×3 for forward + backward), per image over its
      S = patches + 1 (CLS) positions: ``2·N_vit·S + 2·C·p²·h_v·patches`` (patch embedding)
      ``+ 4·L_v·h_v·S²`` (attention forward). All its layers run (the LLaVA feature layer is read from
      the hidden states).

    Norms, softmax, activations, biases and embedding lookups are ignored (a few %, as in both sources).
    """
    from genixer.backbones.llava import num_image_tokens

    text, vision = model_config.text_config, model_config.vision_config
    q = text.num_attention_heads * _get(text, "head_dim", text.hidden_size // text.num_attention_heads)
    lm = 6 * language_params(text) * tokens + 12 * text.num_hidden_layers * q * tokens * seq_len
    projector = 6 * (vision.hidden_size * text.hidden_size + text.hidden_size ** 2) * images * num_image_tokens(model_config)
    patches = (vision.image_size // vision.patch_size) ** 2
    s, hv = patches + 1, vision.hidden_size
    per_image = (2 * vision_params(vision) * s + 2 * _get(vision, "num_channels", 3) * vision.patch_size ** 2 * hv * patches
                 + 4 * vision.num_hidden_layers * hv * s * s)
    return float(lm + projector + (3 if vision_trained else 1) * per_image * images)


def sequence_lengths(batch) -> torch.Tensor | None:
    """Real tokens of each sequence a token batch holds (float64): packed samples' ``sample_lengths``, else the
    ``attention_mask`` row sums; None for a batch without tokens."""
    if not isinstance(batch, dict):
        return None
    if batch.get("sample_lengths") is not None:
        return batch["sample_lengths"].double()
    mask = batch.get("attention_mask")
    return None if mask is None else mask.sum(-1).double()


class Throughput(L.Callback):
    """Logs tokens/s per device and MFU every ``every_n_steps`` training batches, over the last
    ``every_n_steps`` of them, and keeps a summary over the run for the manifest.

    Per device: each rank sees its own batches and times its own steps, so ``train/tokens_per_s`` is this
    device's figure; ``train/tokens_per_s_global`` multiplies it by the world size (assuming ranks run
    alike) and is logged only when there are several ranks. Tokens are the batch's ``attention_mask``
    ones (padding excluded; image tokens included: they are expanded in ``input_ids``), or a packed batch's
    ``sample_lengths`` (genixer.data.packing: each sample its own attention context). A batch with neither
    (e.g. vision or CLIP pretraining) is not measured, so those runs log nothing.

    Timing: ``time.perf_counter`` from ``on_train_batch_start`` to ``on_train_batch_end`` (forward,
    backward and optimizer step; data loading, validation and checkpointing excluded), with
    ``torch.cuda.synchronize`` around it on a CUDA device. The first batch (warm-up) is skipped.

    MFU = model FLOPs/s (``flops_per_step``, needs ``pl_module.model.config`` to be a LLaVA config) /
    (``peak_tflops``·10¹²). ``peak_tflops``: the device's peak dense bf16 TFLOPs; None: looked up in
    ``PEAK_TFLOPS`` by the CUDA device name (not reported when unknown, or on a CPU). The bf16 peak
    is the reference whatever the training precision (fp32 runs will show a low MFU).
    """

    def __init__(self, every_n_steps: int = 10, peak_tflops: float | None = None) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps, self.peak_tflops = every_n_steps, peak_tflops
        self.window: deque = deque(maxlen=every_n_steps)   # (tokens, flops, seconds) per batch
        self.batches = 0               # batches seen (the first is warm-up)
        self.steps_measured = 0
        self.total = [0, 0.0, 0.0]     # tokens, flops, seconds over all measured batches
        self.last: dict[str, float] = {}
        self._start: float | None = None
        self._cuda = False
        self._world_size = 1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        device = trainer.strategy.root_device
        self._cuda = device.type == "cuda"
        self._world_size = trainer.world_size
        if self.peak_tflops is None and self._cuda:
            self.peak_tflops = peak_tflops_of(torch.cuda.get_device_name(device))

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._start is None:
            return
        self._sync()
        seconds, self._start = time.perf_counter() - self._start, None
        self.batches += 1
        lengths = sequence_lengths(batch)
        if lengths is None or self.batches == 1:   # not a token batch, or warm-up
            return
        tokens = int(lengths.sum())
        flops = self._flops(pl_module, batch, tokens, float((lengths ** 2).sum()) / max(tokens, 1))
        self.window.append((tokens, flops, seconds))
        self.steps_measured += 1
        for i, v in enumerate((tokens, flops or 0.0, seconds)):
            self.total[i] += v
        if self.steps_measured % self.every_n_steps == 0:
            self._log(trainer, pl_module)

    def _flops(self, pl_module, batch: dict, tokens: int, seq_len: float) -> float | None:
        config = getattr(getattr(pl_module, "model", None), "config", None)
        if not (hasattr(config, "text_config") and hasattr(config, "vision_config")):
            return None
        pixels = batch.get("pixel_values")
        images = int(pixels.shape[0]) if pixels is not None else 0
        vision_trained = any(p.requires_grad for n, p in pl_module.model.named_parameters() if "vision_tower." in n)
        return flops_per_step(config, tokens, images, seq_len, vision_trained=vision_trained)

    def _rates(self, tokens: float, flops: float | None, seconds: float) -> dict[str, float]:
        rates = {"tokens_per_s": tokens / seconds}
        if self._world_size > 1:
            rates["tokens_per_s_global"] = rates["tokens_per_s"] * self._world_size
        if flops and self.peak_tflops:
            rates["mfu"] = flops / seconds / (self.peak_tflops * 1e12)
        return rates

    def _log(self, trainer, pl_module) -> None:
        tokens, seconds = sum(w[0] for w in self.window), sum(w[2] for w in self.window)
        flops = None if any(w[1] is None for w in self.window) else sum(w[1] for w in self.window)
        if seconds <= 0:
            return
        self.last = self._rates(tokens, flops, seconds)
        metrics = {f"train/{k}": v for k, v in self.last.items()}
        for key, value in metrics.items():   # progress bar + callback_metrics; loggers below, on our schedule
            pl_module.log(key, value, prog_bar=key == "train/tokens_per_s", logger=False, on_step=True,
                          on_epoch=False, batch_size=1)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def summary(self) -> dict:
        """For the manifest: the run's mean (all measured batches) and the last window's figures."""
        tokens, flops, seconds = self.total
        out: dict = {"steps_measured": self.steps_measured, "window": self.every_n_steps,
                     "world_size": self._world_size, "peak_tflops": self.peak_tflops}
        if seconds > 0:
            def named(k: str) -> str:
                return "tokens_per_s_per_device" if k == "tokens_per_s" else k
            out.update({named(k): v for k, v in self._rates(tokens, flops, seconds).items()})
            out.update({f"{named(k)}_last": v for k, v in self.last.items()})
        return out
