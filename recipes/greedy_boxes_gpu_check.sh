#!/usr/bin/env bash
# generation.greedy_boxes on the GPU: Genixer_S mini writes REC samples (boxes) sampled with greedy boxes through the
# engine (CUDA graphs: the per-slot box state is updated inside them) and through the static-cache loop, in fp32;
# their texts must be equal, and differ from the engine's without greedy_boxes. Then the same with generation.word_groups
# too (each group's most likely word, chosen inside the graphs). Then generation.best_of=2 through both: the same
# candidates, the same scores (the rows the engine streams are scored as the static loop's) and the same picks.
# CPU smoke run: TRAINER=cpu.
set -e
W=/tmp/gbw; R=/tmp/gbr; py=${PYTHON:-python3}
$py -m genixer.miniworld --root $W --num-train 10 --num-heldout 128 --num-val 4 --workers 8 > /dev/null
run() {  # name cache extra...
  local name=$1 cache=$2; shift 2
  $py generate.py generator=checkpoints/genixer_s_mini task=rec paths.mini_world=$W world=mini world.num_train=10 \
    world.num_heldout=128 world.num_val=4 trainer=${TRAINER:-gpu_predict} trainer.precision=32-true \
    generation.cache=$cache generation.do_sample=true generation.temperature=1.0 generation.max_new_tokens=64 \
    generation.compile_prefill=false generation.compile_decode=false "$@" hydra.run.dir=$R/$name > $R.$name.log 2>&1 \
    || { tail -30 $R.$name.log; exit 1; }
}
run engine engine generation.greedy_boxes=true
run static static generation.greedy_boxes=true
run plain engine
words='generation.word_groups=[[small,large],[red,green,blue,yellow,purple,orange],[circle,square,triangle,diamond,star]]'
run engine_words engine generation.greedy_boxes=true "$words"
run static_words static generation.greedy_boxes=true "$words"
kinds='candidate_kinds={_target_: genixer.miniworld.coverage.row_kind, _partial_: true}'
run engine_best engine generation.greedy_boxes=true generation.best_of=2 "$kinds"
run static_best static generation.greedy_boxes=true generation.best_of=2 "$kinds"
$py - <<'PY'
import json
runs = ("engine", "static", "plain", "engine_words", "static_words")
t = {m: {r["id"]: r["text"] for r in map(json.loads, open(f"/tmp/gbr/{m}/samples.jsonl"))} for m in runs}
def count(a, b, equal=True):
    return sum((t[a][k] == t[b][k]) == equal for k in t[a])
print(f"greedy_boxes, engine vs static loop: {count('engine', 'static')} of {len(t['engine'])} texts equal; "
      f"against the engine without greedy_boxes: {count('engine', 'plain', False)} differ")
print(f"word_groups, engine vs static loop: {count('engine_words', 'static_words')} of {len(t['engine_words'])} texts "
      f"equal; against the engine without word_groups: {count('engine_words', 'engine', False)} differ")
c = {m: {r["id"]: r for r in map(json.loads, open(f"/tmp/gbr/{m}/candidates.jsonl"))} for m in ("engine_best", "static_best")}
same = sum(c["engine_best"][k]["text"] == r["text"] for k, r in c["static_best"].items())
gap = max(abs(c["engine_best"][k]["logp"] - r["logp"]) for k, r in c["static_best"].items() if c["engine_best"][k]["text"] == r["text"])
picks = sum(c["engine_best"][k]["picked"] == r["picked"] for k, r in c["static_best"].items())
print(f"best_of=2, engine vs static loop: {same} of {len(c['static_best'])} candidates equal, largest logp gap "
      f"{gap:.2e} among them, {picks} picks the same")
print(json.load(open("/tmp/gbr/engine/manifest.json"))["throughput"])
PY
