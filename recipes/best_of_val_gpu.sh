#!/usr/bin/env bash
# On one GPU (the device machine): every Genixer_S family's demo decoding on the 1,000 val images as the best of K
# candidates (recipes/grade_genixer_s.sh, three instances side by side), then OUT/candidates.tgz with each run's
# candidates.jsonl, samples.jsonl and tables, to re-pick on a CPU (recipes/best_of_repick.py: the first k of them are
# a run at best_of=k, each candidate's seed is its own). Usage: K=8 OUT=<folder> bash recipes/best_of_val_gpu.sh
# (about 6 minutes on an H200 at K=8). CANDIDATE: the generator to grade (default the shipped Genixer_S).
set -eu
k=${K:-8}; out=${OUT:?OUT=<folder>}; work=/tmp/best_of_val; candidate=${CANDIDATE:-checkpoints/genixer_s_mini}
py=${PYTHON:-python3}
$py -c "from genixer.miniworld.ensure import ensure_world as e; e('runs/grade_world_1000', seed=0, num_train=1000, num_heldout=300, num_val=1000)"
extra="trainer=gpu trainer.precision=32-true batch_size=256 generation.best_of=$k"
grade() { PYTHON=$py PROBE=0 VAL_IMAGES=1000 EXTRA="$extra" TASKS=$1 DECODINGS=$2 \
  bash recipes/grade_genixer_s.sh "$candidate" "$work/$3"; }
grade rec,reg sampled a & grade pointqa,rd open6 b & grade qca_box open6 c & wait
tar -czf "$out/candidates.tgz" -C "$work" .
