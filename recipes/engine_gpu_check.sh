#!/usr/bin/env bash
# generate.py on the GPU through the engine: greedy, counter-noise and mt19937-noise (the default, computed on the
# GPU) sampled, then greedy through HF generate; prints the manifests' throughput and limits.
set -e
W=/tmp/gw; R=/tmp/gr
python3 -m genixer.miniworld --root $W --num-train 10 --num-heldout 96 --num-val 4 --workers 8 > /dev/null
for mode in greedy sampled mt19937; do
  extra=""; [ $mode = sampled ] && extra="generation.do_sample=true generation.temperature=0.7 generation.noise=counter"
  [ $mode = mt19937 ] && extra="generation.do_sample=true generation.temperature=0.7"   # the default noise, on the GPU
  python3 generate.py generator=checkpoints/genixer_l_mini task=common_vqa paths.mini_world=$W world=mini world.num_train=10 \
    world.num_heldout=96 world.num_val=4 samples_per_image=4 trainer=${TRAINER:-gpu_predict} generation.cache=engine $extra \
    hydra.run.dir=$R/$mode > $R.$mode.log 2>&1 || { tail -30 $R.$mode.log; exit 1; }
  python3 -c "import json;m=json.load(open('$R/$mode/manifest.json'));print('$mode', json.dumps(m['counts']), json.dumps(m['throughput']))"
  head -c 600 $R/$mode/samples.jsonl; echo
done
python3 generate.py generator=checkpoints/genixer_l_mini task=common_vqa paths.mini_world=$W world=mini world.num_train=10 \
  world.num_heldout=96 world.num_val=4 samples_per_image=4 trainer=${TRAINER:-gpu_predict} generation.cache=dynamic \
  hydra.run.dir=$R/dynamic > $R.dynamic.log 2>&1 || { tail -30 $R.dynamic.log; exit 1; }
python3 - <<'PY'
import json
t = {m: {r["id"]: r["text"] for r in map(json.loads, open(f"/tmp/gr/{m}/samples.jsonl"))} for m in ("greedy", "dynamic")}
same = sum(t["greedy"][k] == t["dynamic"][k] for k in t["greedy"])
print(f"engine vs HF generate (dynamic), greedy: {same} of {len(t['greedy'])} texts equal")
print(json.load(open("/tmp/gr/dynamic/manifest.json"))["throughput"])
PY
# the filter stage on the greedy samples (judge_mini on QA rows): its manifest's throughput and limit
python3 filter.py run=$R/greedy filter=mini paths.mini_world=$W world=mini world.num_train=10 world.num_heldout=96 \
  world.num_val=4 trainer=${TRAINER:-gpu_predict} > $R.filter.log 2>&1 || { tail -30 $R.filter.log; exit 1; }
python3 -c "import json,glob;m=json.load(open(glob.glob('$R/greedy/filter/*/manifest.json')[0]));print('filter', json.dumps(m['throughput']))"
