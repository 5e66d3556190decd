#!/usr/bin/env bash
# Issue 10: two Genixer_S candidates from one vision stage, trained side by side on one GPU (one device
# call), to be chosen between on the val split (never on the held-out images the tables report):
#   s_more : the mixture before issue 10 (Visual Genome REC phrases at 50%), 8,000 steps
#   s_rec2 : REC from unique (RefCOCO-style) expressions only, twice over: conf/data/mixture/mini_world_genixer_s.yaml
#            since issue 10 (chosen; the shipped checkpoints/genixer_s_mini), 8,000 steps
# Side by side, each job ran ~77 ms/step and stopped at the 6:40 time cap (~5,200 steps, the schedule unfinished).
# Usage: bash recipes/mini_world_s_variants.sh RUNS_DIR OUT_DIR   (OUT_DIR gets <variant>.tar + logs)
set -u
runs=${1:?usage: $0 RUNS_DIR OUT_DIR}; out=${2:?usage: $0 RUNS_DIR OUT_DIR}
mkdir -p "$runs" "$out"; export GENIXER_RUNS=$runs GENIXER_DATA=${GENIXER_DATA:-$runs/data}
py=${PYTHON:-python3}; t0=$(date +%s)
$py train.py experiment=mini_world_s_vision hydra.run.dir="$runs/s_vision" > "$runs/vision.log" 2>&1 ||
  { tail -n 30 "$runs/vision.log"; exit 1; }
tail -n 1 "$runs/vision.log"; echo "vision stage done at $(( $(date +%s) - t0 )) s"
common=(experiment=mini_world_s_generator backbone.vision_init="$runs/s_vision" trainer.max_steps=8000
        trainer.max_time=00:00:06:40 data.num_workers=7)
$py train.py "${common[@]}" '+data.mixture.components.rec_vg={_target_: genixer.data.mixture.Component, fraction: 0.5}' \
  '+data/source@data.mixture.components.rec_vg.source=mini_world_vg_regions' '+task@data.mixture.components.rec_vg.task=rec' \
  '~data.mixture.components.rec.repeat' hydra.run.dir="$runs/s_more" > "$runs/s_more.log" 2>&1 &
$py train.py "${common[@]}" hydra.run.dir="$runs/s_rec2" > "$runs/s_rec2.log" 2>&1 &
wait
echo "generators done at $(( $(date +%s) - t0 )) s"
for v in s_more s_rec2; do
  tail -n 1 "$runs/$v.log"; cp "$runs/$v.log" "$out/"
  tar -C "$runs/$v" -cf "$out/$v.tar" checkpoint manifest.json || tail -n 30 "$runs/$v.log"
done
