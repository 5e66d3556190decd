#!/usr/bin/env bash
# Issue 12: the study on the GPU machine (one or two H200s: GPUS=[0,1]), resumable across device calls: each call unpacks the
# state an earlier call packed, runs `study.py` until its time budget, and packs the state again (without
# the world, which is rebuilt bit for bit, Lightning checkpoints, training files, which are rewritten, the
# weights of downstream models already scored, and unscored downstream runs, which train again).
# The GPU image lacks hydra-core, omegaconf, antlr4 and pycocotools: install their wheels first (docs/study.md).
# Usage: BUDGET=540 bash recipes/study_gpu.sh STATE_DIR OUT_DIR [study overrides]
#   STATE_DIR: a folder with state.tgz.part* from the previous call (or empty); OUT_DIR gets the new parts + logs
set -u
state=${1:?usage: $0 STATE_DIR OUT_DIR [overrides]}; out=${2:?usage: $0 STATE_DIR OUT_DIR [overrides]}; shift 2
runs=${GENIXER_RUNS:-/tmp/study_runs}; export GENIXER_RUNS=$runs
mkdir -p "$runs" "$out"
if ls "$state"/state.tgz.part* > /dev/null 2>&1; then cat "$state"/state.tgz.part* | tar -xzf - -C "$runs"; fi
py=${PYTHON:-python3}
setsid timeout -s INT "${BUDGET:-540}" $py study.py device=gpu launcher=parallel jobs=${JOBS:-8} gpus=${GPUS:-null} \
  num_workers=2 batch_size=256 "$@" > "$out/study.log" 2>&1
rc=$?
pkill -INT -f 'train.py|evaluate.py|generate.py|filter.py' 2> /dev/null; sleep 3
pkill -KILL -f 'train.py|evaluate.py|generate.py|filter.py' 2> /dev/null
echo "study exit $rc"; tail -n 5 "$out/study.log"
# A scored model's weights stay behind; an unscored one is left out whole (it trains again next call): 30 tiny
# checkpoints would not fit in what a call can carry or return.
skip=$(mktemp)
for run in $(find "$runs/study" -maxdepth 6 -type d -path '*/downstream*/*/seed*'); do
  if [ -e "$run/eval/results.json" ]; then echo "$run/checkpoint"; else echo "$run"; fi | sed "s|^$runs/||" >> "$skip"
done
tar -C "$runs" -czf - --exclude='*/world' --exclude='*/lightning' --exclude='*/data/vqa' --exclude='*/data/rec' \
  -X "$skip" study | split -b 8m - "$out/state.tgz.part"
ls -la "$out"
(cd "$runs" && find study -path '*/eval/results.json' -o -path '*/data/datasets.json' -o -name 'manifest.json' -path '*/downstream*/*' | tar -czf "$out/scores.tgz" -T -)
for f in $(find "$runs/study" -maxdepth 4 \( -name results.md -o -name results.json -o -name study.html -o -name 'plot_*.svg' \)); do
  case "$f" in */downstream-*/*) cp "$f" "$out/$(basename "$(dirname "$f")")_$(basename "$f")";; *) cp "$f" "$out/";; esac
done
exit $rc
