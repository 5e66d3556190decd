#!/usr/bin/env bash
# Issue 10: Genixer_S mixture candidates, trained side by side on one GPU from one vision tower, each then
# generating one greedy sample per val image for every grounding family (chosen on val, never on held-out):
#   s_rec2      : the shipped mixture itself (conf/data/mixture/mini_world_genixer_s.yaml)
#   s_qca3      : the shipped mixture (conf/data/mixture/mini_world_genixer_s.yaml) with Q->C^Box A 3x
#   s_qca3_seed1..3: s_qca3 from other seeds (weights and data order); s_qca3_reg2: s_qca3 with RefCOCO REG 2x
#   s_qca6, s_qca6_seed1: Q->C^Box A 6x (its relation questions' yes / no is learnt by some runs only), two seeds
#   s_qca3_vis, s_qca3_vis_seed1: s_qca3 with the vision tower learning too (perception errors dominate the wrong
#                 Q->C^Box A rows: missed, doubled or miscoloured objects), from two seeds
#   s_rec2_punct, s_qca3_punct, s_qca3_punct_seed1: s_rec2 / s_qca3 with punctuation split off by the tokenizer
#                 (exist chains name the wrong shape: "squares?" and "squares." were unrelated tokens)
#   s_cot6, s_cot6_seed1, s_cot6x2: the shipped mixture on a world with up to 6 Q->C^Box A samples per image (one
#                 per question type: ~5.7x the distinct samples, QCA_PER_IMAGE=6), Q->C^Box A 1x (2x for s_cot6x2*);
#                 repeating the one-per-image samples memorised them (RECIPE.md, session 31); s_cot6x2_rp*: REG and
#                 PointQA Local 2x as well (s_cot6x2 lost both; a fine-tune with them up recovered part, session 32);
#                 s_cot6x2_rp_novg*: and no Visual Genome REG phrases (17% of them are ambiguous under the strict REG
#                 check, and s_cot6x2's wrong REG rows are mostly ambiguous; a short CPU fine-tune without them did not
#                 write fewer ambiguous ones, RECIPE.md)
#   s_cot6x2_tw, s_cot6x2_tw_seed1: s_cot6x2_rp plus the REG rows whose object has a same-colour, same-shape twin
#                 once more, 2x (mixture mini_world_genixer_s_twins: those rows 4x in all; fine-tuned in, they cut
#                 the ambiguous REG rows, RECIPE.md, session 34), two seeds
#   s_rec3_qca3 : REC 3x and Q->C^Box A 3x
#   s_rec3_qca3_novg : the same without the Visual Genome REG regions
# Why: longer training lifted REC (83.0 -> 84.3 / 85.7) but cost Q->C^Box A (83.3 -> 76.3 / 76.7), whose
# training file has one sample per image (RECIPE.md of checkpoints/genixer_s_mini).
# Usage: bash recipes/mini_world_s_mixtures.sh VISION_RUN RUNS_DIR OUT_DIR [STEPS]
#   VISION_RUN: a stage-1 run dir (holds vision_tower/); OUT_DIR gets <variant>.tgz.part* (the checkpoint, manifest and
#   resolved config; cat the parts | tar -xz),
#   <variant>_val.tgz (its val samples), logs.tgz; parts of 15 MB, as a device call returns no file over ~20 MB
#   (val generation in fp32 on the GPU, greedy, as the demo decodes Genixer_S)
#   VARIANTS: which of the variants below run (space-separated names; all of them when unset), e.g.
#   VARIANTS=s_rec3_qca3_novg trains that one alone on the GPU for its whole schedule
#   EXTRA: overrides for every variant (e.g. a wider LM); SKIP_VAL=1: no val generation, checkpoints only
#   QCA_PER_IMAGE: Q->C^Box A samples per training image in the training world (default 1, as released)
# On the GPU machine (Python 3.12) the image lacks hydra, omegaconf, antlr4 and pycocotools: install the wheel bundle
# first, with pycocotools for cp312 (pip download --only-binary=:all: --python-version 3.12 --implementation cp
# --platform manylinux2014_x86_64 -d .whl pycocotools; the cp311 wheel does not install there).
set -u
vision=${1:?usage: $0 VISION_RUN RUNS_DIR OUT_DIR [STEPS]}; runs=${2:?}; out=${3:?}; steps=${4:-6000}
num_train=${NUM_TRAIN:-20000}  # the training world of mini_world_generator (smaller: a smoke run)
qca_per_image=${QCA_PER_IMAGE:-1}
mkdir -p "$runs" "$out"; export GENIXER_RUNS=$runs GENIXER_DATA=${GENIXER_DATA:-$runs/data}
py=${PYTHON:-python3}; t0=$(date +%s)
. "$(dirname "$0")/side_by_side.sh"   # pack, repeat, twins, check_variants, train_and_pack
qca2=$(repeat 2 qca_box); rp=$(repeat 2 qca_box reg pointqa_local); tw="$rp $(twins 2)"
declare -A mix=(
  [s_rec2]=""
  [s_qca3]="++data.mixture.components.qca_box.repeat=3"
  [s_qca3_seed1]="++data.mixture.components.qca_box.repeat=3 seed=1"
  [s_qca3_seed2]="++data.mixture.components.qca_box.repeat=3 seed=2"
  [s_qca3_seed3]="++data.mixture.components.qca_box.repeat=3 seed=3"
  [s_qca6]="++data.mixture.components.qca_box.repeat=6"
  [s_qca6_seed1]="++data.mixture.components.qca_box.repeat=6 seed=1"
  [s_qca3_reg2]="++data.mixture.components.qca_box.repeat=3 ++data.mixture.components.reg.repeat=2"
  [s_qca3_vis]="++data.mixture.components.qca_box.repeat=3 module.trainable=[vision,projector,language]"
  [s_qca3_vis_seed1]="++data.mixture.components.qca_box.repeat=3 module.trainable=[vision,projector,language] seed=1"
  [s_rec2_punct]="backbone.split_punctuation=true"
  [s_qca3_punct]="++data.mixture.components.qca_box.repeat=3 backbone.split_punctuation=true"
  [s_qca3_punct_seed1]="++data.mixture.components.qca_box.repeat=3 backbone.split_punctuation=true seed=1"
  [s_cot6]=""
  [s_cot6_seed1]="seed=1"
  [s_cot6x2]="$qca2"
  [s_cot6x2_seed1]="$qca2 seed=1"
  [s_cot6x2_seed2]="$qca2 seed=2"
  [s_cot6x2_rp]="$rp"
  [s_cot6x2_rp_seed1]="$rp seed=1"
  [s_cot6x2_rp_seed2]="$rp seed=2"
  [s_cot6x2_rp_novg]="$rp ~data.mixture.components.reg_vg"
  [s_cot6x2_rp_novg_seed1]="$rp ~data.mixture.components.reg_vg seed=1"
  [s_cot6x2_tw]="$tw"
  [s_cot6x2_tw_seed1]="$tw seed=1"
  [s_rec3_qca3]="++data.mixture.components.rec.repeat=3 ++data.mixture.components.qca_box.repeat=3"
  [s_rec3_qca3_novg]="++data.mixture.components.rec.repeat=3 ++data.mixture.components.qca_box.repeat=3 ~data.mixture.components.reg_vg"
)
variants=(${VARIANTS:-${!mix[@]}})
check_variants
for v in "${variants[@]}"; do
  [[ $v != s_cot6* || $qca_per_image == 6 ]] || { echo "$v trains on QCA_PER_IMAGE=6's world"; exit 2; }
done
common=(experiment=mini_world_s_generator backbone.vision_init="$vision" trainer.max_steps="$steps" world.num_train="$num_train"
        trainer.max_time=${MAX_TIME:-00:00:06:00} data.image_table=true data.num_workers=4
        world.boxcot_per_image="$qca_per_image" ${EXTRA:-})
# Both worlds built once up front (the runs would otherwise build them concurrently): the training world of
# mini_world_generator, and the demo world whose val images are graded.
$py -m genixer.miniworld --root "$GENIXER_DATA/mini_world" --num-train "$num_train" --num-heldout 300 --num-val 300 --workers 16 \
  --boxcot-per-image "$qca_per_image" \
  > "$runs/world.log" 2>&1 && $py -m genixer.miniworld --root "$runs/val_world/demo/world" --num-train 1000 \
  --num-heldout 300 --num-val 300 --workers 16 >> "$runs/world.log" 2>&1 || { tail -n 20 "$runs/world.log"; exit 1; }
echo "worlds built at $(( $(date +%s) - t0 )) s"
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086
  train_and_pack "$v" ${mix[$v]} &
done
wait
echo "generators done at $(( $(date +%s) - t0 )) s"
if [ -n "${SKIP_VAL:-}" ]; then  # the checkpoints alone (graded elsewhere, e.g. on the CPU as the demo decodes)
  tar -C "$runs" -czf "$out/logs.tgz" $(cd "$runs" && ls *.log); exit 0
fi
for v in "${variants[@]}"; do
  tail -n 2 "$runs/$v.log"
  [ -f "$runs/$v/manifest.json" ] || continue   # train_and_pack said why
  $py generate.py -m experiment=mini_world_demo generator="$runs/$v" task=rec,reg,pointqa,qca_box,rd \
    queries='${paths.mini_world}/images/val.jsonl' paths.runs="$runs/val_world" ${GEN_EXTRA:-trainer=gpu trainer.precision=32-true} \
    hydra.sweep.dir="$runs/val/$v" hydra.sweep.subdir='${task.name}' > "$runs/val_$v.log" 2>&1 &
done
wait
echo "val generation done at $(( $(date +%s) - t0 )) s"
for v in "${variants[@]}"; do
  tar -C "$runs" -czf "$out/${v}_val.tgz" "val/$v" 2>/dev/null || echo "$v: incomplete"
done
tar -C "$runs" -czf "$out/logs.tgz" $(cd "$runs" && ls *.log)
