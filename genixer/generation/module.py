"""The generation LightningModule: a generator checkpoint decoding prompt batches (predict only)."""
from __future__ import annotations

import time

import lightning as L
import torch
from transformers import LogitsProcessorList

from genixer.backbones.codec import Codec
from genixer.backbones.protocol import Backbone
from genixer.generation.decoding import decode_static
from genixer.generation.engine import DecodeEngine, Request
from genixer.generation.sampling import PerSampleSampler, box_marks, word_groups
from genixer.generation.scoring import output_logprobs, until_eos
from genixer.generation.settings import Decoding
from genixer.runs.precision import fp32_rotary


SCORE_ROWS = 32   # rows per scoring forward (``best_of``)


class GenerationModule(L.LightningModule):
    """``backbone`` and its ``codec`` (built once by the pipeline, shared with the prompt dataset).

    The model is built late (``configure_model``): once per process, on its device.
    """

    def __init__(self, backbone: Backbone, codec: Codec, decoding: Decoding) -> None:
        super().__init__()
        self.backbone, self.codec, self.decoding = backbone, codec, decoding
        self.model, self.engine, self.slots = None, None, None
        self.engine_setup_s = 0.0   # building engines (slot probe, graph capture, first compile): part of a run's time
        self.engine_setup_parts_s: dict[str, float] = {}   # the same by part (``DecodeEngine.setup_s``)
        self.engine_setup_compile_s: dict[str, float] = {}   # torch.compile's share of each part
        self.engine_run_s = 0.0   # the host's time inside the engine's runs (the rest of a run's time is the loop's)
        self.box_marks = None   # ``greedy_boxes``' bracket table, built on first use
        self.word_groups = None   # ``word_groups``' token ids, built on first use

    def configure_model(self) -> None:
        if self.model is None:
            self.model = self.backbone.build(self.codec).eval().requires_grad_(False)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        """With the engine, only the pixels go to the device: the prompts are cut and queued on the host, where
        reading them does not wait for the decode steps still running on the GPU."""
        if self.decoding.cache != "engine" or "pixel_values" not in batch:
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        return {**batch, "pixel_values": super().transfer_batch_to_device(batch["pixel_values"], device, dataloader_idx)}

    def on_predict_start(self) -> None:
        fp32_rotary(self.model)   # after the precision plugin's cast (bf16-true)

    @torch.no_grad()
    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[dict]:
        """Generate for the images that loaded; pass error rows through unchanged. With the engine, the rows
        returned are those that finished meanwhile (any batch's); the last batch drains the engine."""
        rows = list(batch["errors"])
        if self.decoding.cache == "engine":
            batches = self.trainer.num_predict_batches[dataloader_idx]
            if batches == float("inf"):
                raise RuntimeError("generation.cache=engine drains on the last batch: it needs a loader with a length")
            finished = self.stream(batch, drain=batch_idx + 1 == batches)
            return rows + self.rows([r.key for r, _ in finished], [r.input_ids for r, _ in finished],
                                    [r.pixel_values for r, _ in finished], [ids for _, ids in finished])
        if batch["meta"]:
            prompts = [ids[mask.bool()] for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
            new, logprobs = self.generate(batch)
            rows += self.rows(batch["meta"], prompts, batch["pixel_values"], new.cpu(), logprobs)
        return rows

    def rows(self, metas: list[dict], prompts: list[torch.Tensor], pixels, outputs, logprobs=None) -> list[dict]:
        """The generated rows; with ``best_of`` > 1, each with how likely the model finds its text (``logp``, the
        candidates' score, over ``logp_tokens`` tokens): the decoding's own (``logprobs``) or one scoring forward."""
        pad, eos = self.codec.tokenizer.pad_token_id, self.codec.tokenizer.eos_token_id
        rows = [{**meta, "text": self.codec.decode(ids), "new_tokens": int((ids != pad).sum())}
                for meta, ids in zip(metas, outputs)]
        if self.decoding.best_of > 1 and logprobs is not None:
            for row, ids, logp in zip(rows, outputs, logprobs.tolist()):
                row.update(logp=round(logp, 4), logp_tokens=len(until_eos(ids, eos)))
        elif self.decoding.best_of > 1:
            dtype = next(self.model.parameters()).dtype
            for start in range(0, len(rows), SCORE_ROWS):
                part = slice(start, start + SCORE_ROWS)
                scores = output_logprobs(self.model, prompts[part], torch.stack(list(pixels[part])).to(dtype),
                                         outputs[part], eos, pad)
                for row, (logp, tokens) in zip(rows[part], scores):
                    row.update(logp=round(logp, 4), logp_tokens=tokens)
        return rows

    def stream(self, batch: dict, drain: bool, keys: list | None = None) -> list[tuple]:
        """Queue the batch's prompts on the engine; ``(request, new ids)`` of the sequences finished meanwhile
        (a request's key: its row's meta, unless given)."""
        dtype = next(self.model.parameters()).dtype
        keys = batch["meta"] if keys is None else keys
        pixels = batch["pixel_values"].to(dtype) if "pixel_values" in batch else []
        requests = [Request(key, ids[mask.bool()], image, meta.get("seed", 0)) for key, meta, ids, mask, image
                    in zip(keys, batch["meta"], batch.get("input_ids", []), batch.get("attention_mask", []), pixels)]
        longest = max((len(r.input_ids) for r in requests), default=0)
        finished = []
        if self.engine is not None and longest > self.engine.max_prompt:  # a longer prompt: a wider engine
            finished, self.engine = self.engine.run(drain=True), None
        if requests and self.engine is None:
            self.engine = self.new_engine(longest, requests)
        if self.engine is not None:
            self.engine.submit(requests)
            start = time.perf_counter()
            finished += self.engine.run(drain)
            self.engine_run_s += time.perf_counter() - start
        return finished

    def on_predict_end(self) -> None:
        """The engine's K/V slots go back to the allocator once the loop is done."""
        self.engine = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def roofline(self, prompt_tokens: float, new_tokens: float, batch_size: int, devices: int, cuda_index: int,
                 requests: int) -> dict:
        """This run's hardware limit (``genixer.runs.roofline``) on CUDA device ``cuda_index``; rows per decode
        step: the engine's slots (at most the ``requests`` one device had), else the batch size."""
        from genixer.runs.roofline import device_limits, generation_limit
        rows = min(self.slots, requests) if self.slots else batch_size
        return generation_limit(self.model, prompt_tokens, new_tokens, rows, device_limits(cuda_index), devices)

    def new_engine(self, max_prompt: int, requests: list[Request]) -> DecodeEngine:
        """Slots from free GPU memory ("auto"); on a CPU, "auto" means the loader's batch size."""
        kwargs, tok = self.decoding.kwargs, self.codec.tokenizer
        slots = self.decoding.slots
        if slots == "auto" and next(self.model.parameters()).device.type != "cuda":
            slots = len(requests)
        sampler = self.sampler([], 0) if self.decoding.do_sample else None
        # In predict, no more slots than this rank's requests: its batches x the first batch's rows (a small run on
        # a large GPU would otherwise hold, and decode over, slots that never fill).
        trainer = self._trainer
        bound = sum(trainer.num_predict_batches) * len(requests) if trainer is not None and trainer.predicting else None
        start = time.perf_counter()
        engine = DecodeEngine(self.model, max_prompt, kwargs["max_new_tokens"], tok.eos_token_id, tok.pad_token_id,
                              kwargs.get("min_new_tokens", 0), sampler, slots, probe=requests, max_slots=bound,
                              compile_prefill=self.decoding.compile_prefill, compile_decode=self.decoding.compile_decode)
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        self.engine_setup_s += time.perf_counter() - start
        for total, parts in ((self.engine_setup_parts_s, engine.setup_s),
                             (self.engine_setup_compile_s, engine.setup_compile_s)):
            for part, seconds in parts.items():
                total[part] = round(total.get(part, 0.0) + seconds, 2)
        self.slots = engine.slots
        return engine

    def generate(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(new token ids per row, their log-probabilities or None)``: HF ``generate`` (dynamic cache), our
        static-cache loop (which scores its rows itself when ``best_of`` > 1) or our engine."""
        if self.decoding.cache == "engine":
            new = {r.key: ids for r, ids in self.stream(batch, drain=True, keys=list(range(len(batch["meta"]))))}
            return torch.stack([new[i] for i in range(len(batch["meta"]))]), None
        ids, mask = batch["input_ids"], batch["attention_mask"]
        pixels = batch["pixel_values"].to(next(self.model.parameters()).dtype)
        pad, eos = self.codec.tokenizer.pad_token_id, self.codec.tokenizer.eos_token_id
        seeds = [m["seed"] for m in batch["meta"]]
        sampler = self.sampler(seeds, ids.shape[1]) if self.decoding.do_sample else None
        kwargs = self.decoding.kwargs
        if self.decoding.cache == "static":
            out = decode_static(self.model, ids, mask, pixels, kwargs["max_new_tokens"], eos, pad,
                                kwargs.get("min_new_tokens", 0), sampler, return_logprobs=self.decoding.best_of > 1)
            return out if self.decoding.best_of > 1 else (out, None)
        processors = {"logits_processor": LogitsProcessorList([sampler])} if sampler else {}
        out = self.model.generate(input_ids=ids, attention_mask=mask, pixel_values=pixels, pad_token_id=pad,
                                  eos_token_id=eos, do_sample=False, **kwargs, **processors)
        return out[:, ids.shape[1]:], None

    def sampler(self, seeds: list[int], prompt_length: int) -> PerSampleSampler:
        """Sampling, seeded per sample: greedy decoding over warped logits plus the sample's own noise
        (``greedy_boxes``: not inside boxes)."""
        sampling = dict(self.decoding.sampling)
        head = self.model.get_output_embeddings().weight   # tables on the model's device: no copy per decode step
        if sampling.pop("greedy_boxes", False):
            if self.box_marks is None:
                self.box_marks = box_marks(self.codec.tokenizer, head.shape[0]).to(head.device)
            sampling["box_marks"] = self.box_marks
        if groups := sampling.pop("word_groups", None):
            if self.word_groups is None:
                self.word_groups = [ids.to(head.device) for ids in word_groups(self.codec.tokenizer, groups, head.shape[0])]
            sampling["word_groups"] = self.word_groups
        return PerSampleSampler(seeds, prompt_length, **sampling)
