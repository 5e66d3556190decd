"""Length-grouped batching: less padding, every index once, deterministic per (seed, epoch), whole batches per rank."""
from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from conftest import vqa_rec_mixture
from genixer.data.batching import LengthGroupedSampler, grouped_batches, padded_tokens

# A fake dataset of known lengths: short answers, long conversations, image tokens on every item.
LENGTHS = [16 + random.Random(i).choice([random.Random(-i).randint(5, 40), random.Random(-i).randint(100, 400)])
           for i in range(1000)]
B = 8


def random_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """The plain path's batches: DataLoader(shuffle=True, generator=seed, drop_last=True)."""
    return list(BatchSampler(RandomSampler(range(n), generator=torch.Generator().manual_seed(seed)), batch_size, True))


def loader_batches(sampler: LengthGroupedSampler, batch_size: int) -> list[list[int]]:
    """The batches a DataLoader cuts from the sampler (indices only: the dataset is range(n))."""
    return [b.tolist() for b in DataLoader(range(len(LENGTHS)), batch_size=batch_size, sampler=sampler)]


def test_grouped_batches_pad_much_less_than_random():
    grouped, plain = grouped_batches(LENGTHS, B, seed=0, epoch=0), random_batches(len(LENGTHS), B, seed=0)
    assert all(len(b) == B for b in grouped) and len(grouped) == len(plain) == len(LENGTHS) // B
    assert all([LENGTHS[i] for i in b] == sorted((LENGTHS[i] for i in b), reverse=True) for b in grouped)
    waste = padded_tokens(grouped, LENGTHS) - sum(LENGTHS[i] for b in grouped for i in b)
    random_waste = padded_tokens(plain, LENGTHS) - sum(LENGTHS[i] for b in plain for i in b)
    assert waste < 0.1 * random_waste, (waste, random_waste)
    assert padded_tokens(grouped, LENGTHS) < 0.5 * padded_tokens(plain, LENGTHS)


def test_every_index_once_and_deterministic_per_seed_and_epoch():
    n = 1003  # 1003 % 8 = 3 samples dropped (drop_last): a different 3 each epoch
    lengths = LENGTHS + [50, 60, 70]
    a = grouped_batches(lengths, B, seed=3, epoch=1)
    flat = [i for b in a for i in b]
    assert len(flat) == len(set(flat)) == n - n % B
    assert a == grouped_batches(lengths, B, seed=3, epoch=1)
    assert a != grouped_batches(lengths, B, seed=3, epoch=2) and a != grouped_batches(lengths, B, seed=4, epoch=1)
    dropped = {e: set(range(n)) - {i for b in grouped_batches(lengths, B, 3, e) for i in b} for e in range(3)}
    assert all(len(d) == 3 for d in dropped.values()) and len({frozenset(d) for d in dropped.values()}) > 1
    # batch order is shuffled, not longest-first
    assert [max(lengths[i] for i in b) for b in a] != sorted((max(lengths[i] for i in b) for b in a), reverse=True)


def test_one_process_loader_yields_the_grouped_batches():
    sampler = LengthGroupedSampler(LENGTHS, B, seed=0, epoch=2)
    assert loader_batches(sampler, B) == grouped_batches(LENGTHS, B, 0, 2)
    assert len(sampler) == len(LENGTHS) // B * B
    small = LengthGroupedSampler([5, 9, 7], B, seed=0)  # fewer samples than a batch: one partial batch
    assert list(small) == [1, 2, 0] and len(small) == 3


def test_ranks_get_disjoint_whole_batches():
    lengths = LENGTHS[:1000 - 3 * B]  # 122 batches: 2 ranks x 61; 3 ranks x 40 (2 batches dropped)
    everything = grouped_batches(lengths, B, seed=0, epoch=0)
    for world in (2, 3):
        per_rank = [loader_batches(LengthGroupedSampler(lengths, B, 0, 0, num_replicas=world, rank=r), B)
                    for r in range(world)]
        assert len({len(batches) for batches in per_rank}) == 1  # same number of steps on every rank
        flat = [tuple(b) for batches in per_rank for b in batches]
        assert len(flat) == len(set(flat)) == len(everything) // world * world
        assert set(flat) <= {tuple(b) for b in everything}  # whole grouped batches, never a mix
        indices = [i for b in flat for i in b]
        assert len(indices) == len(set(indices))  # disjoint
        if world == 2:
            assert sorted(indices) == sorted(i for b in everything for i in b)  # covers all kept samples
    with pytest.raises(ValueError, match="fewer batches"):
        LengthGroupedSampler(LENGTHS[:3 * B], B, num_replicas=4, rank=0)


def test_lightning_keeps_the_sampler_under_ddp():
    """Being a DistributedSampler, the grouped sampler is not replaced by Lightning's (use_distributed_sampler)."""
    import lightning as L
    from lightning.pytorch.trainer.states import RunningStage

    trainer = L.Trainer(accelerator="cpu", devices=1, strategy="ddp", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False)
    connector = trainer._data_connector  # private: the hook Lightning runs on each train DataLoader
    grouped = DataLoader(range(64), batch_size=4, sampler=LengthGroupedSampler(range(64), 4, num_replicas=2, rank=1))
    plain = DataLoader(range(64), batch_size=4, shuffle=True)
    assert trainer._accelerator_connector.is_distributed and connector._requires_distributed_sampler(plain)
    assert connector._prepare_dataloader(grouped, shuffle=True, mode=RunningStage.TRAINING) is grouped


# -- the data module -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data_module(small_world):
    from genixer.backbones.conversation import Conversation
    from genixer.backbones.llava import TinyLlava
    from genixer.data.instructions import InstructionDataModule, instruction_texts

    mixture = vqa_rec_mixture(small_world, cap=60)
    layers = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    tiny = TinyLlava(Conversation("vicuna_v1", "A chat."), image_size=32, vocab_size=400, max_length=512,
                     vision={"patch_size": 8, **layers}, text=layers)
    codec = tiny.codec(instruction_texts(mixture, 0))  # 16 image tokens

    def build(**kw):
        return InstructionDataModule(mixture, codec, batch_size=4, seed=5, **kw)
    return build


def test_plain_path_unchanged(data_module):
    """The batches a plain shuffled DataLoader trained on (it draws its workers' seed from the generator first)."""
    loader = data_module().train_dataloader()
    plain = DataLoader(range(len(loader.dataset)), batch_size=4, shuffle=True, drop_last=True,
                       generator=torch.Generator().manual_seed(5))
    assert list(loader.batch_sampler) == [b.tolist() for b in plain] != random_batches(len(loader.dataset), 4, seed=5)


def test_data_module_groups_mini_world_batches(data_module):
    loader = data_module(group_by_length=True).train_dataloader()
    dataset = loader.dataset
    lengths = dataset.lengths()
    assert [len(dataset[i]["input_ids"]) for i in range(0, len(dataset), 7)] == lengths[::7]  # exact, not an estimate
    assert isinstance(loader.sampler, LengthGroupedSampler)
    batch = next(iter(loader))
    assert batch["input_ids"].shape[0] == 4 and batch["pixel_values"].shape[0] == 4
    real = batch["attention_mask"].sum(1)
    assert real.tolist() == sorted(real.tolist(), reverse=True)
    assert list(loader.sampler.batches()) == grouped_batches(lengths, 4, 5, 0)
