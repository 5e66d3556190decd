#!/usr/bin/env bash
# Issue 10: choose the mini CLIP filter's threshold (conf/filter/clip_mini.yaml) where the demo never reports: the
# demo world's val images, generated with exactly the demo's decodings (Makefile: SAMPLE_L, SAMPLE_S, REC_S) for the
# runs the demo CLIP-filters (main/rec, genixer_s/rec, genixer_s/reg), scored by the mini CLIP, then the lowest cosine
# whose kept rows are >= 98% strict-correct on val (1 point of margin over issue 10's 97% target). CPU, ~10 minutes.
# Usage: bash recipes/choose_clip_threshold.sh [OUT_DIR]   (needs the demo world: make demo, or its first command)
set -eu
PY=${PY:-.venv/bin/python}; out=${1:-runs/choose_clip}
val='queries=${paths.mini_world}/images/val.jsonl'
gen() { $PY generate.py experiment=mini_world_demo "$val" hydra.run.dir=$out/generate/$1 "${@:2}"; }
gen main_rec generator=checkpoints/genixer_l_mini task=rec generation.do_sample=true generation.temperature=0.7
gen s_rec generator=checkpoints/genixer_s_mini task=rec generation.num_beams=5 generation.max_new_tokens=64
gen s_reg generator=checkpoints/genixer_s_mini task=reg
for run in main_rec s_rec s_reg; do $PY filter.py run=$out/generate/$run filter=clip_mini; done
$PY evaluate.py experiment=mini_world_demo oracle.split=val filters=[$out/generate] \
  choose_threshold='{scorer: clip, field: cosine, min_precision: 0.98}' hydra.run.dir=$out/evaluate
