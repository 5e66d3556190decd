"""Sequence packing: full rows, each sample's answers supervised and nothing else, no attention across samples
(the packed forward equals each sample's own), deterministic rows dealt whole to ranks, a packed training run."""
from __future__ import annotations

import itertools
import json
import random

import lightning as L
import pytest
import torch

from conftest import compose_config, world_overrides, vqa_rec_mixture
from genixer.backbones.codec import IGNORE_INDEX
from genixer.data.batching import ShuffledSampler
from genixer.data.instructions import TrainCollator
from genixer.data.packing import PackedCollator, PackedRows, pack_rows
from genixer.training.throughput import Throughput

LENGTHS = [random.Random(i).randint(20, 120) for i in range(500)]


def test_rows_hold_every_sample_once_nearly_full_and_depend_on_seed_and_epoch():
    rows = pack_rows(LENGTHS, 256, seed=3, epoch=1)
    flat = [i for row in rows for i in row]
    assert sorted(flat) == list(range(len(LENGTHS)))
    filled = [sum(LENGTHS[i] for i in row) for row in rows]
    assert max(filled) <= 256 and sum(LENGTHS) / (256 * len(rows)) > 0.95   # next-fit would leave ~15% empty
    assert rows == pack_rows(LENGTHS, 256, seed=3, epoch=1)
    assert rows != pack_rows(LENGTHS, 256, seed=3, epoch=2) and rows != pack_rows(LENGTHS, 256, seed=4, epoch=1)
    with pytest.raises(ValueError, match="longer than a packed row of 100 tokens"):
        pack_rows(LENGTHS, 100, seed=0, epoch=0)


def test_ranks_get_whole_disjoint_rows():
    rows = pack_rows(LENGTHS, 256, seed=0, epoch=0)   # every rank plans the same rows
    shares = [[rows[r] for r in ShuffledSampler(len(rows), 0, 0, num_replicas=2, rank=k)] for k in range(2)]
    samples = [{i for row in share for i in row} for share in shares]
    assert len(shares[0]) == len(shares[1]) == len(rows) // 2 and not samples[0] & samples[1]


# -- the mini world's samples, packed ----------------------------------------------------------------

@pytest.fixture(scope="module")
def world(small_world):
    """A packing data module over mini-world VQA + REC items, and a tiny LLaVA (rows of 256 tokens: several samples)."""
    from genixer.backbones.conversation import Conversation
    from genixer.backbones.llava import TinyLlava
    from genixer.data.instructions import InstructionDataModule, instruction_texts

    mixture = vqa_rec_mixture(small_world, cap=24)
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    tiny = TinyLlava(Conversation("vicuna_v1", "A chat."), image_size=32, vocab_size=400, max_length=256,
                     vision={"patch_size": 8, **layers}, text=layers)
    codec = tiny.codec(instruction_texts(mixture, 0))  # 16 image tokens
    data = InstructionDataModule(mixture, codec, batch_size=3, seed=5, packing=True)
    return data, tiny, codec


def first_batch(loader) -> tuple[dict, list[dict]]:
    """The loader's first batch and where its samples are: (row, start) and the unpacked item, from the row plan."""
    placed = []
    for row, r in enumerate(list(loader.batch_sampler)[0]):
        start = 0
        for i in loader.dataset.rows[r]:
            item = loader.dataset.samples[i]
            placed.append({"row": row, "start": start, "index": i, **item})
            start += len(item["input_ids"])
    return next(iter(loader)), placed


def supervised_runs(labels: torch.Tensor, tokenizer) -> list[str]:
    runs, current = [], []
    for token in labels.tolist() + [IGNORE_INDEX]:
        if token != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs


def test_each_packed_sample_supervises_exactly_its_answers(world):
    data, _, codec = world
    loader = data.train_dataloader()
    assert isinstance(loader.dataset, PackedRows) and loader.dataset.capacity == codec.max_length
    batch, samples = first_batch(loader)
    assert len(samples) > batch["input_ids"].shape[0] == 3 and "attention_mask" not in batch   # several samples a row
    assert batch["sample_lengths"].tolist() == [len(s["input_ids"]) for s in samples]
    for sample in samples:
        n, row, start = len(sample["input_ids"]), sample["row"], sample["start"]
        ids, labels = batch["input_ids"][row, start : start + n], batch["labels"][row, start : start + n]
        assert torch.equal(ids, sample["input_ids"]) and torch.equal(batch["position_ids"][row, start : start + n],
                                                                     torch.arange(n))
        answers = [gpt + "</s>" for _, gpt in loader.dataset.samples.render(sample["index"])]
        assert supervised_runs(labels, codec.tokenizer) == answers   # prompts and other samples: unsupervised
        image = ids == codec.image_token_id
        assert int(image.sum()) == codec.num_image_tokens and (labels[image] == IGNORE_INDEX).all()
    assert torch.equal(batch["pixel_values"], torch.stack([s["pixel_values"] for s in samples]))   # image-token order
    ends = {s["row"]: s["start"] + len(s["input_ids"]) for s in samples}   # each row's last sample's end
    for row, end in ends.items():   # the rest of a row: padding, never supervised
        assert end <= codec.max_length and (batch["input_ids"][row, end:] == codec.tokenizer.pad_token_id).all()
        assert (batch["labels"][row, end:] == IGNORE_INDEX).all()
    assert int(batch["sample_lengths"].sum()) == sum(ends.values()) < batch["input_ids"].numel()


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_forward_equals_each_samples_own(world, attention):
    """Per-token logits of a packed batch equal the unpacked (padded) batch's, sample by sample; so does the module's
    loss. With the KV cache on (transformers then ignores the position-id restarts: plain causal rows), they differ."""
    from genixer.training.generator import GeneratorModule

    data, tiny, codec = world
    torch.manual_seed(0)
    module = GeneratorModule(tiny, codec, optimizer=torch.optim.SGD)
    module.configure_model()
    model = module.model.eval()
    model.set_attn_implementation(attention)
    batch, samples = first_batch(data.train_dataloader())
    inputs = {k: v for k, v in batch.items() if k != "sample_lengths"}
    unpacked = TrainCollator(codec.tokenizer.pad_token_id)(samples)
    with torch.no_grad():
        alone = model(**unpacked)
        packed, causal = model(**inputs, use_cache=False).logits, model(**inputs).logits
        leaked = 0.0
        for k, sample in enumerate(samples):
            n = len(sample["input_ids"])
            span = sample["row"], slice(sample["start"], sample["start"] + n)
            torch.testing.assert_close(packed[span], alone.logits[k, :n], atol=1e-5, rtol=1e-5)
            leaked = max(leaked, float((causal[span] - alone.logits[k, :n]).abs().max()))
        assert leaked > 1e-2
        torch.testing.assert_close(module.batch_loss(batch), alone.loss, atol=1e-6, rtol=1e-6)


class CheckPackedTokens(L.Callback):
    """Appends, per batch: rows, samples, real tokens, and the throughput meter's count of the batch (if measured)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        meter = next(c for c in trainer.callbacks if isinstance(c, Throughput))
        real = int((batch["input_ids"] != module.codec.tokenizer.pad_token_id).sum())
        counted = meter.window[-1][0] if meter.steps_measured else None
        with open(self.path, "a") as f:
            f.write(json.dumps([len(batch["input_ids"]), len(batch["sample_lengths"]), real, counted]) + "\n")


def test_a_packed_training_run_counts_packed_tokens(tmp_path, small_world):
    from genixer.pipelines import train

    out, log = tmp_path / "run", tmp_path / "batches.jsonl"
    metrics = train.run(compose_config("train", [
        f"paths.output_dir={out}", "debug=fast", *world_overrides(small_world), "data.packing=true", "data.batch_size=2",
        "backbone.max_length=512", "trainer.max_steps=3", "backbone.text.num_hidden_layers=1",
        "backbone.vision.num_hidden_layers=1",
        "+callbacks.throughput={_target_: genixer.training.throughput.Throughput, every_n_steps: 1}",
        f"+callbacks.check={{_target_: test_packing.CheckPackedTokens, path: {log}}}"]))
    batches = [json.loads(line) for line in log.read_text().splitlines()]
    assert metrics["steps"] == 3 and len(batches) == 3 and metrics["train/loss"] > 0
    assert all(rows == 2 and samples > rows for rows, samples, _, _ in batches)   # rows of several samples
    assert [counted for *_, counted in batches] == [None] + [real for _, _, real, _ in batches[1:]]   # warm-up skipped
    assert metrics["throughput"]["steps_measured"] == 2 and metrics["throughput"]["tokens_per_s_per_device"] > 0


def test_a_rebuilt_loader_resumes_at_the_next_packed_batch(world):
    """A resumed run rebuilds the epoch's loader (same rows, same order) and skips the batches it trained."""
    data, _, _ = world
    loader, resumed = data.train_dataloader(), data.train_dataloader()
    assert resumed.dataset.rows == loader.dataset.rows
    resumed.load_state_dict({"epoch": 0, "batches": 1})
    first, second = itertools.islice(loader, 2)
    batch = next(iter(resumed))
    assert torch.equal(batch["input_ids"], second["input_ids"]) and not torch.equal(batch["input_ids"], first["input_ids"])


def test_packing_refuses_length_grouping_and_multi_row_flash_attention(world):
    from genixer.data.instructions import InstructionDataModule
    from genixer.training.generator import GeneratorModule

    data, tiny, codec = world
    with pytest.raises(ValueError, match="packing and data.group_by_length"):
        InstructionDataModule(data.mixture, codec, batch_size=2, packing=True, group_by_length=True)
    module = GeneratorModule(tiny, codec, optimizer=torch.optim.SGD)
    module.configure_model()
    module.model.config.text_config._attn_implementation = "flash_attention_2"   # not installed here: never runs
    with pytest.raises(ValueError, match="one row per batch"):
        module.batch_loss(next(iter(data.train_dataloader())))


def test_collator_pads_rows_as_their_own_segment():
    rows = [{"input_ids": torch.tensor([5, 6, 7]), "labels": torch.tensor([-100, 6, 7]), "position_ids": torch.tensor([0, 0, 1]),
             "pixel_values": torch.zeros(2, 3, 1, 1), "sample_lengths": torch.tensor([1, 2])},
            {"input_ids": torch.tensor([8]), "labels": torch.tensor([-100]), "position_ids": torch.tensor([0]),
             "pixel_values": torch.ones(1, 3, 1, 1), "sample_lengths": torch.tensor([1])}]
    batch = PackedCollator(pad_id=0)(rows)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]] and batch["labels"][1].tolist() == [-100] * 3
    assert batch["position_ids"].tolist() == [[0, 0, 1], [0, 0, 1]]
    assert batch["pixel_values"][:, 0, 0, 0].tolist() == [0, 0, 1] and batch["sample_lengths"].tolist() == [1, 2, 1]
