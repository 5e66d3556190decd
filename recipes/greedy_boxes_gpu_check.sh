#!/usr/bin/env bash
# generation.greedy_boxes on the GPU: Genixer_S mini writes REC samples (boxes) sampled with greedy boxes through the
# engine (CUDA graphs: the per-slot box state is updated inside them) and through the static-cache loop, in fp32;
# their texts must be equal, and differ from the engine's without greedy_boxes. CPU smoke run: TRAINER=cpu.
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
$py - <<'PY'
import json
t = {m: {r["id"]: r["text"] for r in map(json.loads, open(f"/tmp/gbr/{m}/samples.jsonl"))} for m in ("engine", "static", "plain")}
same = sum(t["engine"][k] == t["static"][k] for k in t["engine"])
differ = sum(t["engine"][k] != t["plain"][k] for k in t["engine"])
print(f"greedy_boxes, engine vs static loop: {same} of {len(t['engine'])} texts equal; "
      f"against the engine without greedy_boxes: {differ} differ")
print(json.load(open("/tmp/gbr/engine/manifest.json"))["throughput"])
PY
