#!/usr/bin/env bash
# The mini-world Genixer_L recipe on one GPU: world -> vision pretraining -> generator ->
# oracle check on held-out images (generated on the CPU, as `make demo` does).
# Usage: bash recipes/mini_world_genixer_l.sh RUNS_DIR   (writes RUNS_DIR/{vision,generator,demo})
set -euo pipefail
runs=${1:?usage: $0 RUNS_DIR}
export GENIXER_RUNS=$runs GENIXER_DATA=${GENIXER_DATA:-$runs/data}
py=${PYTHON:-python3}
$py train.py experiment=mini_world_vision hydra.run.dir="$runs/vision" > "$runs/vision.log" 2>&1
tail -n 2 "$runs/vision.log"
# trainer.max_time: the cap the shipped generator was trained under (one device call; 4000 steps took less).
$py train.py experiment=mini_world_generator backbone.vision_init="$runs/vision" trainer.max_time=00:00:05:30 \
  hydra.run.dir="$runs/generator" > "$runs/generator.log" 2>&1
tail -n 2 "$runs/generator.log"
$py generate.py -m experiment=mini_world_demo generator="$runs/generator" task=common_vqa,rec \
  hydra.sweep.dir="$runs/demo/generate" hydra.sweep.subdir='${task.name}' > "$runs/generate.log" 2>&1
$py evaluate.py experiment=mini_world_demo runs="[$runs/demo/generate/common_vqa,$runs/demo/generate/rec]" \
  hydra.run.dir="$runs/demo/evaluate" 2>&1 | tail -n 4
