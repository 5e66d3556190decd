#!/usr/bin/env bash
# Issue 12: the study on the GPU machine (one or two H200s: GPUS=[0,1]), resumable across device calls: each call unpacks the
# state an earlier call packed, runs `study.py` until its time budget, and packs the state again (without
# the world, which is rebuilt bit for bit, Lightning checkpoints, training files, which are rewritten, and the
# weights of downstream models already scored).
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
skip=$(mktemp)
for scored in $(find "$runs/study" -path '*/downstream/*/eval/results.json'); do
  echo "$(dirname "$(dirname "$scored")")/checkpoint" | sed "s|^$runs/||" >> "$skip"
done
tar -C "$runs" -czf - --exclude='*/world' --exclude='*/lightning' --exclude='*/data/vqa' --exclude='*/data/rec' \
  -X "$skip" study | split -b 8m - "$out/state.tgz.part"
ls -la "$out"
(cd "$runs" && find study -path '*/eval/results.json' -o -path '*/data/datasets.json' -o -name 'manifest.json' -path '*/downstream/*' | tar -czf "$out/scores.tgz" -T -)
for f in $(find "$runs/study" -maxdepth 3 \( -name results.md -o -name results.json -o -name study.html -o -name 'plot_*.svg' \)); do cp "$f" "$out/"; done
exit $rc
