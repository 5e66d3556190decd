"""``generation.best_of``: candidates per sample, scored by the generator itself, one kept per sample by kind."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import ROOT, compose_config, shipped_mini_batch, world_overrides
from genixer.generation.best_of import ANNOTATIONS, pick
from genixer.generation.scoring import output_logprobs
from genixer.generation.settings import Decoding

PROMPTS = ["Ask a question about the image and answer it.\nThis is the Common VQA task.", "Describe", "What?",
           "Where is it?\nThis is a Referring Expression Comprehension (REC) task."]


@pytest.fixture(scope="module")
def mini():
    """The shipped Genixer_L mini checkpoint in fp32 and a left-padded batch of noise images: (codec, model, batch)."""
    _, codec, model, batch = shipped_mini_batch(PROMPTS)
    return codec, model, batch


def test_output_logprobs_equal_the_decoding_steps_own_scores(mini):
    """Teacher-forced scores equal what HF generate's own steps gave each chosen token (fp32, CPU), for left-padded
    prompts of different lengths and outputs that end at different steps or not at all."""
    codec, model, batch = mini
    eos, pad = codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id
    out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         pixel_values=batch["pixel_values"], max_new_tokens=20, do_sample=False, pad_token_id=pad,
                         eos_token_id=eos, return_dict_in_generate=True, output_logits=True)
    new = out.sequences[:, batch["input_ids"].shape[1]:]
    steps = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).gather(-1, new[..., None])[..., 0]
    expected = []
    for row, ids in enumerate(new):
        ended = (ids == eos).nonzero()
        n = int(ended[0]) + 1 if len(ended) else len(ids)
        expected.append((steps[row, :n].sum().item(), n))
    assert len({n for _, n in expected}) >= 2   # outputs of different lengths
    assert len(set(batch["attention_mask"].sum(-1).tolist())) >= 3   # and different padding
    prompts = [ids[mask.bool()] for ids, mask in zip(batch["input_ids"], batch["attention_mask"])]
    got = output_logprobs(model, prompts, batch["pixel_values"], list(new), eos, pad)
    assert [n for _, n in got] == [n for _, n in expected]
    assert [s for s, _ in got] == pytest.approx([s for s, _ in expected], abs=1e-4)
    # a worse continuation scores lower: the score reads the tokens, not only their count
    worse = [torch.cat([ids[:1], ids[1:].roll(1)]) for ids in new]
    assert all(w < g for (w, _), (g, _) in zip(output_logprobs(model, prompts, batch["pixel_values"], worse, eos, pad), got))


def candidate(sample: str, k: int, kind: str | None, logp: float) -> dict:
    status = "ok" if kind else "rejected"
    return {"id": f"{sample}#{k}", "status": status, "kind": kind, "logp": logp, "text": f"{sample}.{k}"}


def test_pick_ranks_within_kind_not_by_raw_likelihood():
    rows = [candidate("a", 0, "long", -10.0), candidate("a", 1, "short", -3.0),   # raw logp would take a#1
            candidate("b", 0, "long", -12.0), candidate("b", 1, "long", -20.0),
            candidate("c", 0, "short", -2.0), candidate("c", 1, "short", -4.0),
            candidate("d", 0, None, -0.5), candidate("d", 1, "short", -3.5),      # a parse failure never wins
            candidate("e", 0, None, -1.0), candidate("e", 1, None, -2.0)]          # nothing parsed: the first stays
    picked, annotated = pick(rows, lambda r: r["kind"])
    by_id = {r["id"]: r for r in picked}
    assert list(by_id) == ["a", "b", "c", "d", "e"]
    # "long": mean -14, sd 4.3 -> a#0 stands at +0.93; "short": mean -3.1, sd 0.74 -> a#1 at +0.17
    assert [(s, by_id[s]["candidate"]) for s in "abcde"] == [("a", 0), ("b", 0), ("c", 0), ("d", 1), ("e", 0)]
    assert by_id["a"]["text"] == "a.0" and by_id["e"]["status"] == "rejected" and "kind_z" not in by_id["e"]
    assert by_id["a"]["kind_z"] == pytest.approx((-10 + 14) / 4.3205, abs=1e-3)
    assert len(annotated) == len(rows) and sum(r["picked"] for r in annotated) == 5
    assert {r["id"] for r in annotated if r["picked"]} == {"a#0", "b#0", "c#0", "d#1", "e#0"}
    # a share of the z-score over all candidates (mean -7.8, sd 6.1): a#1 stands 0.78 over it, a#0 0.36 under, so
    # a#1 wins once 0.17 + w * 0.78 > 0.93 - w * 0.36 (w > 0.67); the other samples keep theirs
    picked, _ = pick(rows, lambda r: r["kind"], overall=1.0)
    assert [r["candidate"] for r in picked] == [1, 0, 0, 1, 0]
    assert picked[0]["all_z"] == pytest.approx((-3 + 7.7857) / 6.1054, abs=1e-3)
    assert pick(rows, lambda r: r["kind"], overall=0.5)[0][0]["candidate"] == 0


def test_best_of_is_checked():
    base = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.0}
    assert Decoding.from_config(base).settings() == {**base}   # 1: the provenance of runs before the option
    assert Decoding.from_config({**base, "best_of": 3}).settings()["best_of"] == 3
    for bad in (0, -1, True, 2.5, "4"):
        with pytest.raises(ValueError, match="best_of must be a positive integer"):
            Decoding.from_config({**base, "best_of": bad})
    assert Decoding.from_config({**base, "best_of": 3, "best_of_overall": 0.5}).settings()["best_of_overall"] == 0.5
    assert "best_of_overall" not in Decoding.from_config({**base, "best_of": 3}).settings()
    for bad in (-0.1, True, "x"):
        with pytest.raises(ValueError, match="best_of_overall must be a number >= 0"):
            Decoding.from_config({**base, "best_of": 2, "best_of_overall": bad})
    with pytest.raises(ValueError, match="do_sample=true"):
        Decoding.from_config({"max_new_tokens": 8, "best_of": 2})


def test_candidates_share_the_prompt_and_draw_their_own_noise(small_world):
    from genixer.generation.queries import PromptDataset, load_queries
    from hydra.utils import instantiate

    task = instantiate(compose_config("generate", ["task=rec"]).task)
    codec = type("Codec", (), {})()
    queries = load_queries(small_world / "images" / "heldout.jsonl")[:2]
    one = PromptDataset(queries, small_world / "images", task, codec, 2, 0)
    three = PromptDataset(queries, small_world / "images", task, codec, 2, 0, best_of=3)
    assert len(three) == 3 * len(one) == 12
    assert [one.sample_id(i) for i in range(4)] == [three.sample_id(3 * i).rpartition("#")[0] for i in range(4)]
    assert "#" not in "".join(one.sample_id(i) for i in range(4))
    for i in range(4):
        ids = [three.sample_id(3 * i + k) for k in range(3)]
        assert ids == [f"{one.sample_id(i)}#{k}" for k in range(3)]
        assert {three.instruction(3 * i + k) for k in range(3)} == {one.instruction(i)}


KINDS = "candidate_kinds={_target_: genixer.miniworld.coverage.row_kind, _partial_: true}"


def rec_best_of_3(small_world) -> list[str]:
    """Genixer_S REC on the small world's 12 held-out images, 3 candidates each, as the demo samples REC."""
    return [f"generator={ROOT / 'checkpoints/genixer_s_mini'}", "task=rec", *world_overrides(small_world),
            "generation.do_sample=true", "generation.temperature=1.0", "generation.greedy_boxes=true",
            "generation.max_new_tokens=48", "generation.best_of=3", KINDS]


def test_generate_keeps_one_candidate_per_sample_and_every_candidate_beside(tmp_path, small_world):
    """Genixer_S REC on the small world's held-out images, 3 candidates each: one row per sample (its id, the kept
    candidate's text), all 36 candidates in candidates.jsonl, and the same picks whatever the batch size."""
    from genixer.pipelines import generate

    runs = {}
    for batch_size in (2, 7):
        out = tmp_path / f"b{batch_size}"
        counts = generate.run(compose_config("generate", [f"paths.output_dir={out}", f"batch_size={batch_size}",
                                                          *rec_best_of_3(small_world)]))
        rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        cands = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
        assert counts["generated"] == len(cands) == 36 and len(rows) == 12
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["rows"] == 12 and manifest["outputs"]["candidates"].endswith("candidates.jsonl")
        assert manifest["throughput"]["candidates_per_sample"] == 3   # its rates count candidates
        kept = {c["id"].rpartition("#")[0]: c for c in cands if c["picked"]}
        assert len(kept) == 12 and sum(c["picked"] for c in cands) == 12
        for row in rows:
            assert "#" not in row["id"] and kept[row["id"]]["text"] == row["text"]
            assert row["candidate"] == int(kept[row["id"]]["id"].rpartition("#")[2])
            own = [c for c in cands if c["id"].startswith(row["id"] + "#") and c["status"] == "ok"]
            if own:
                assert row["kind_z"] == max(c["kind_z"] for c in own)
        assert len({c["text"] for c in cands}) > len(rows)   # the candidates are different draws
        found = {c["kind"] for c in cands if c["status"] == "ok"}
        assert "color+shape" in found and len(found) >= 3   # the grammar's kinds, not one group
        assert all(c["logp"] < 0 and c["logp_tokens"] == c["new_tokens"] for c in cands)
        runs[batch_size] = {r["id"]: (r["candidate"], r["text"]) for r in rows}
    assert runs[2] == runs[7]


def test_every_cache_scores_its_rows_alike(mini):
    """Candidates of one sample (the same prompt and image, their own seeds) side by side in a batch: HF generate
    and the engine (a scoring forward) and the static loop (its own step scores, one prefill per prompt) give the same
    texts and scores."""
    from types import SimpleNamespace

    from genixer.generation.decoding import same_as_previous
    from genixer.generation.module import GenerationModule

    codec, model, batch = mini
    repeat = torch.tensor([3, 1, 2, 2])   # candidates per prompt
    batch = {**{k: v.repeat_interleave(repeat, 0) for k, v in batch.items() if torch.is_tensor(v)}, "errors": [],
             "meta": [{"id": f"s{k}#{j}", "seed": 100 * k + j} for k, n in enumerate(repeat.tolist()) for j in range(n)]}
    first, row_of = same_as_previous(batch["input_ids"], batch["attention_mask"], batch["pixel_values"])
    assert first.tolist() == [0, 3, 4, 6] and row_of.tolist() == [0, 0, 0, 1, 2, 2, 3, 3]
    rows = {}
    for cache in ("dynamic", "static", "engine"):
        module = GenerationModule(None, codec, Decoding.from_config({
            "cache": cache, "max_new_tokens": 16, "do_sample": True, "temperature": 1.0, "best_of": 2, "slots": 3}))
        module.model, module._trainer = model, SimpleNamespace(num_predict_batches=[1], predicting=False)
        rows[cache] = {r["id"]: (r["text"], r["logp_tokens"], r["logp"]) for r in module.predict_step(batch, 0)}
    assert len(rows["engine"]) == len(rows["dynamic"]) == 8
    assert len({text for text, _, _ in rows["static"].values()}) >= 6   # candidates of one prompt differ
    for cache in ("static", "engine"):
        for key, (text, tokens, logp) in rows["dynamic"].items():
            assert rows[cache][key][:2] == (text, tokens) and rows[cache][key][2] == pytest.approx(logp, abs=1e-3)


def test_best_of_resumes_after_kill(tmp_path, small_world):
    """kill -9 mid-run plus a torn candidate line: the same command finishes with the uninterrupted run's picks."""
    import subprocess
    import sys

    from conftest import kill_and_tear
    from genixer.pipelines import generate

    whole = tmp_path / "whole"
    generate.run(compose_config("generate", [f"paths.output_dir={whole}", "batch_size=4", *rec_best_of_3(small_world)]))
    run = tmp_path / "run"
    command = [sys.executable, str(ROOT / "generate.py"), "batch_size=1", *rec_best_of_3(small_world), f"hydra.run.dir={run}"]
    env = {"GENIXER_RUNS": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    shard = run / "shards/rank0.jsonl"
    done = kill_and_tear(command, env, shard, b'{"id": "1000001/rec/0#2", "text": "Quest', lines=5)
    assert not (run / "manifest.json").exists()
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    def picks(path):
        return [(r["id"], r["candidate"], r["text"]) for r in map(json.loads, (path / "samples.jsonl").read_text().splitlines())]
    assert picks(run) == picks(whole) and len(picks(run)) == 12 and 5 <= done < 36
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["counts"]["resumed"] == done and manifest["counts"]["generated"] == 36 - done


def test_a_wrong_kind_function_fails_before_any_work(tmp_path):
    from hydra.errors import InstantiationException

    from genixer.pipelines import generate

    with pytest.raises(InstantiationException, match="genixer.nope"):
        generate.run(compose_config("generate", [f"paths.output_dir={tmp_path / 'run'}", "generation.do_sample=true",
                                                 "generation.best_of=2", "candidate_kinds={_target_: genixer.nope.kind}"]))
    assert not (tmp_path / "run").exists()


def test_pick_keeps_each_family_at_its_shares():
    """With shares, kinds fill up to their share of the family's samples in order of score; the rest of a sample's
    candidates wait. A family without shares, or a sample whose kinds are all full, keeps its best candidate."""
    def cand(sample, k, kind, logp, family="f"):
        return {**candidate(sample, k, kind, logp), "family": family}
    rows = [cand(s, 0, "a", -1.0 - i) for i, s in enumerate(["s1", "s2", "s3", "s4"])]     # a: likely
    rows += [cand(s, 1, "b", -13.0 + i) for i, s in enumerate(["s1", "s2", "s3", "s4"])]   # b: unlikely, s4 best
    rows += [cand("s5", 0, "a", -1.5, "g"), cand("s5", 1, "b", -20.0, "g")]                # family g: no shares
    kind = lambda r: r["kind"]   # noqa: E731
    free = {r["id"]: r["candidate"] for r in pick(rows, kind, overall=10.0)[0]}
    assert free == {"s1": 0, "s2": 0, "s3": 0, "s4": 0, "s5": 0}   # likelihood alone: every sample says "a"
    assert {r["id"]: r["candidate"] for r in pick(rows, kind, overall=10.0, shares={})[0]} == free
    picked, annotated = pick(rows, kind, overall=10.0, shares={"f": {"a": 0.5, "b": 0.5}})
    # f has 4 samples: 2 each. s1, s2 take a's room; s3, s4 wait and get b (s4's b first: the likeliest b)
    assert {r["id"]: (r["candidate"], r["kind"]) for r in picked} == {
        "s1": (0, "a"), "s2": (0, "a"), "s3": (1, "b"), "s4": (1, "b"), "s5": (0, "a")}
    assert {r["id"] for r in annotated if r["picked"]} == {"s1#0", "s2#0", "s3#1", "s4#1", "s5#0"}
    # rooms are rounded up (3 of 5 at 0.5), and a sample with no candidate of a kind with room keeps its best
    rows5 = rows[:8] + [cand("s6", 0, "a", -0.5)]
    picked = pick(rows5, kind, overall=10.0, shares={"f": {"a": 0.5, "b": 0.5}})[0]
    assert sorted(r["id"] for r in picked if r["kind"] == "a") == ["s1", "s2", "s6"]
    picked = pick(rows5, kind, overall=10.0, shares={"f": {"a": 0.2, "b": 0.2}})[0]   # room 1 each
    assert {r["id"]: r["kind"] for r in picked} == {"s6": "a", "s4": "b", "s1": "a", "s2": "a", "s3": "a"}


def test_generate_keeps_kinds_at_the_training_shares(tmp_path, small_world):
    """candidate_shares=mini_world_genixer_s: the shares of the Genixer_S mixture on the run's world, recorded in
    the manifest; each sample keeps the candidate ``pick`` gives under them (the static loop, as the demo runs it)."""
    from genixer.miniworld.coverage import row_kind, training_shares
    from genixer.pipelines import generate
    from hydra.utils import instantiate

    out = tmp_path / "run"
    cfg = compose_config("generate", [f"paths.output_dir={out}", "batch_size=12", *rec_best_of_3(small_world),
                                      "candidate_shares=mini_world_genixer_s", "generation.cache=static"])
    generate.run(cfg)
    shares = json.loads((out / "manifest.json").read_text())["inputs"]["candidate_shares"]
    assert shares == training_shares(instantiate(cfg.candidate_shares.mixture))
    assert shares["rec"]["color+shape"] > 0.3 and sum(shares["rec"].values()) == pytest.approx(1.0)
    assert set(shares) >= {"rec", "reg", "pointqa_local", "pointqa_v7w", "qca_box", "rd"}
    cands = [{k: v for k, v in json.loads(line).items() if k not in ANNOTATIONS}
             for line in (out / "candidates.jsonl").read_text().splitlines()]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    expected = pick(cands, row_kind, 0.0, shares)[0]
    assert [(r["id"], r["candidate"]) for r in rows] == [(r["id"], r["candidate"]) for r in expected]


def test_candidate_shares_are_checked_before_any_work(tmp_path, small_world):
    from genixer.pipelines import generate

    base = [*rec_best_of_3(small_world), "candidate_shares=mini_world_genixer_s"]
    with pytest.raises(ValueError, match="set generation.best_of > 1"):
        generate.run(compose_config("generate", [f"paths.output_dir={tmp_path / 'one'}", *base, "generation.best_of=1"]))
    with pytest.raises(ValueError, match=r"no shares for \['common_vqa'\]"):
        generate.run(compose_config("generate", [f"paths.output_dir={tmp_path / 'vqa'}", *base, "task=common_vqa"]))
    with pytest.raises(ValueError, match="set candidate_kinds"):   # else no kind would match a share
        generate.run(compose_config("generate", [f"paths.output_dir={tmp_path / 'kinds'}", *base, "candidate_kinds=null"]))
    assert not any((tmp_path / d).exists() for d in ("one", "vqa", "kinds"))
