#!/usr/bin/env bash
# The mini world's filter models on one GPU, each followed by its held-out check:
#   clip : a small open_clip CLIP trained from scratch (the REC crop filter)
#   judge: the shipped Genixer_L (checkpoints/genixer_l_mini_all) fine-tuned to answer Yes / No
#          (the QA judge); checked beside the generator it started from
# Usage: bash recipes/mini_world_filters.sh RUNS_DIR [clip|judge|all] [train.py overrides ...]
#   writes RUNS_DIR/{clip,judge} (+ .log, heldout_clip.json, {val,heldout}_judge.json); the world goes to GENIXER_DATA
#   (RUNS_DIR/data)
#   SMOKE=1: a 60-image world and 3 CPU steps per model (checks the recipe end to end)
set -euo pipefail
runs=${1:?usage: $0 RUNS_DIR [clip|judge|all] [overrides ...]}; which=${2:-all}; shift $(($# < 2 ? $# : 2))
case $which in clip|judge|all) ;; *) echo "second argument must be clip, judge or all" >&2; exit 2 ;; esac
export GENIXER_RUNS=$runs GENIXER_DATA=${GENIXER_DATA:-$runs/data}
py=${PYTHON:-python3}
overrides=("$@")
eval_args=(--num-workers 4)
if [[ ${SMOKE:-0} == 1 ]]; then
  overrides=(debug=fast world.num_train=60 world.num_heldout=12 world.num_val=12 world.workers=0 "${overrides[@]}")
  eval_args=(--num-workers 0)
fi
world=$GENIXER_DATA/mini_world
mkdir -p "$runs"

if [[ $which != judge ]]; then
  # trainer.max_time: the cap the shipped model was trained under (one device call); overrides come after it.
  $py train.py experiment=mini_world_clip trainer.max_time=00:00:04:00 hydra.run.dir="$runs/clip" "${overrides[@]}" > "$runs/clip.log" 2>&1
  tail -n 1 "$runs/clip.log"
  $py -m genixer.miniworld.models.heldout clip "$runs/clip/checkpoint" --world "$world" \
    --out "$runs/heldout_clip.json" "${eval_args[@]}"
fi
if [[ $which != clip ]]; then
  $py train.py experiment=mini_world_judge trainer.max_time=00:00:04:00 hydra.run.dir="$runs/judge" "${overrides[@]}" > "$runs/judge.log" 2>&1
  tail -n 1 "$runs/judge.log"
  # beside the shipped judge and the generator it starts from: on val (to choose), then on held-out (to report)
  for split in val heldout; do
    $py -m genixer.miniworld.models.heldout judge "$runs/judge/checkpoint" checkpoints/judge_mini checkpoints/genixer_l_mini_all \
      --world "$world" --split $split --out "$runs/${split}_judge.json" "${eval_args[@]}"
  done
fi
