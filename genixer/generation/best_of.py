"""``generation.best_of``: several sampled candidates per sample, and the one each sample keeps.

Ranking candidates by likelihood alone keeps the kinds a generator finds easiest (short questions, common
expression slots) and loses the rest; picking one at random keeps every kind and every error. So each candidate's
log-likelihood is standardized against the run's other candidates *of its kind* (z-score over the run), and a sample
keeps its candidate that stands highest among its own kind: the kinds stay about as often as sampling drew them, and
within a kind the generator's most confident text wins. Parse failures never win over a parsed candidate.
``overall`` > 0 adds that share of the z-score over all the run's candidates: likelier kinds gain ground.

Ranking within kind keeps the kinds only about as often as sampling drew them. With ``shares`` (family -> kind ->
share, e.g. the generator's training data: ``genixer.miniworld.coverage.training_shares``) each family's kinds are
kept at those shares instead: candidates are taken in order of score over the whole run, each kind up to its share of
its family's samples (rounded up); a sample whose candidates' kinds are all full keeps its best.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from collections import defaultdict
from collections.abc import Callable

CANDIDATE_MARK = "#"   # candidate ids are ``<sample id>#<k>``
ANNOTATIONS = ("kind", "kind_z", "all_z", "picked")   # what ``pick`` adds to each candidate (candidates.jsonl)


def candidate_id(sample_id: str, k: int) -> str:
    return f"{sample_id}{CANDIDATE_MARK}{k}"


def split_candidate(candidate: str) -> tuple[str, int]:
    """``(sample id, k)`` of a candidate id."""
    sample, _, k = candidate.rpartition(CANDIDATE_MARK)
    return sample, int(k)


def pick(candidates: list[dict], kind: Callable[[dict], str], overall: float = 0.0,
         shares: dict[str, dict[str, float]] | None = None) -> tuple[list[dict], list[dict]]:
    """``(one row per sample, every candidate annotated)``: each row is its sample's best candidate under its id
    (``candidate``: which one; ``logp``, ``kind_z``: why); a sample without a parsed candidate keeps its first.

    Candidates are rows with ``id`` ``<sample>#<k>``, ``status`` and, when generated, ``logp`` and ``logp_tokens``
    (``genixer.generation.scoring``); ``kind(row)`` classifies a parsed row. Ranked by ``kind_z + overall * all_z``,
    within ``shares`` when given (a parsed row's ``family`` -> ``kind(row)`` -> share; a family not there: no limit).
    """
    kinds = {r["id"]: kind(r) for r in candidates if r["status"] == "ok"}
    scores = defaultdict(list)
    for r in candidates:
        if r["id"] in kinds:
            scores[kinds[r["id"]]].append(r["logp"])
    spread = {k: (statistics.fmean(v), statistics.pstdev(v) or 1.0) for k, v in scores.items()}
    every = [x for v in scores.values() for x in v]
    mean_all, sd_all = (statistics.fmean(every), statistics.pstdev(every) or 1.0) if every else (0.0, 1.0)
    by_sample: dict[str, list[dict]] = defaultdict(list)
    for r in candidates:
        if r["id"] in kinds:
            mean, sd = spread[kinds[r["id"]]]
            r = {**r, "kind_z": round((r["logp"] - mean) / sd, 4), "all_z": round((r["logp"] - mean_all) / sd_all, 4)}
        by_sample[split_candidate(r["id"])[0]].append(r)
    for group in by_sample.values():
        group.sort(key=lambda r: split_candidate(r["id"])[1])
    parsed = {sample: [r for r in group if "kind_z" in r] for sample, group in by_sample.items()}
    score = lambda r: r["kind_z"] + overall * r["all_z"]   # noqa: E731
    chosen = within_shares(parsed, score, lambda r: kinds[r["id"]], shares) if shares is not None else {}
    rows, annotated = [], []
    for sample, group in by_sample.items():
        best = chosen.get(sample) or (max(parsed[sample], key=score) if parsed[sample] else group[0])   # first of equals
        rows.append({**best, "id": sample, "candidate": split_candidate(best["id"])[1]})
        annotated += [{**r, "kind": kinds.get(r["id"]), "picked": r is best} for r in group]
    return rows, annotated


def within_shares(parsed: dict[str, list[dict]], score: Callable[[dict], float], kind: Callable[[dict], str],
                  shares: dict[str, dict[str, float]]) -> dict[str, dict]:
    """sample -> its candidate, taken in order of ``score`` over every sample's parsed candidates while its kind has
    room: a kind's room is its share of its family's samples (a sample's family: its first parsed candidate's),
    rounded up. Samples left out (every candidate's kind full) and families without shares are not in the result."""
    families = Counter(group[0]["family"] for group in parsed.values() if group)
    room = {(f, k): math.ceil(share * n - 1e-9) for f, n in families.items() for k, share in shares.get(f, {}).items()}
    chosen: dict[str, dict] = {}
    for r in sorted((r for group in parsed.values() for r in group), key=score, reverse=True):
        sample, slot = split_candidate(r["id"])[0], (r["family"], kind(r))
        if sample not in chosen and room.get(slot, 0) > 0:
            chosen[sample] = r
            room[slot] -= 1
    return chosen
