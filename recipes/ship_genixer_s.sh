#!/usr/bin/env bash
# Ship a Genixer_S candidate that won on val (recipes/grade_genixer_s.sh, the RECIPE's rule) as checkpoints/genixer_s_mini:
#   1. its checkpoint files and resolved training config (train_config.yaml) replace the shipped ones; RECIPE.md,
#      metrics.json and vision_config.yaml stay (update them by hand: they say how and why);
#   2. syn_rec_train60.jsonl is rewritten by it: greedy REC on the mini world's first 60 train images, kept by the
#      mini filter (conf/data/source/mini_world_syn_rec.yaml reads it).
# Then, by hand: `make demo-threshold` (CPU, ~10 min; if the threshold moves, conf/filter/clip_mini.yaml), `make demo`,
# and the README's tables and Genixer_S text from what it prints.
# Usage: bash recipes/ship_genixer_s.sh RUN [DEST]   (RUN: a train.py run dir with checkpoint/ and config.yaml;
#   DEST: default checkpoints/genixer_s_mini)
set -eu
run=${1:?usage: $0 RUN [DEST]}; dest=${2:-checkpoints/genixer_s_mini}; py=${PYTHON:-.venv/bin/python}
[ -f "$run/checkpoint/model.safetensors" ] && [ -f "$run/config.yaml" ] || { echo "$run: no checkpoint/ or config.yaml"; exit 2; }
mkdir -p "$dest"
keep=(RECIPE.md metrics.json vision_config.yaml)
for f in "$dest"/*; do   # the old model's files go (the new run may not write every one of them)
  name=$(basename "$f"); [[ " ${keep[*]} " == *" $name "* ]] || rm -f "$f"
done
cp "$run"/checkpoint/* "$dest"/
cp "$run/config.yaml" "$dest/train_config.yaml"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
$py -m genixer.miniworld --root "$tmp/w60" --num-train 60 --num-heldout 4 --num-val 4 > "$tmp/world.log" 2>&1
$py generate.py generator="$dest" task=rec queries="$tmp/w60/images/train" paths.mini_world="$tmp/w60" \
  hydra.run.dir="$tmp/gen" > "$tmp/gen.log" 2>&1
$py filter.py run="$tmp/gen" filter=mini paths.mini_world="$tmp/w60" > "$tmp/filter.log" 2>&1
cp "$tmp/gen/filter/mini/rec_shikra.jsonl" "$dest/syn_rec_train60.jsonl"
echo "shipped $run as $dest: syn_rec_train60.jsonl keeps $(wc -l < "$dest/syn_rec_train60.jsonl") of 60 rows"
echo "next: make demo-threshold; make demo; update README.md and $dest/RECIPE.md"
