# Sourced by the recipes that train several variants side by side on one GPU (mini_world_s_mixtures.sh,
# mini_world_s_finetunes.sh). They set: runs, out (dirs), mix (variant -> overrides), variants (the ones to run),
# py, common (train.py's shared overrides) and t0 (the start, in epoch seconds).

# pack NAME PATH...: the paths under $runs as $out/NAME.tgz.part* (15 MB parts: a device call returns no file over
# ~20 MB; cat the parts | tar -xz)
pack() { local name=$1; shift; tar -C "$runs" -czf - "$@" | split -b 15m - "$out/$name.tgz.part"; }

# train_and_pack NAME OVERRIDE...: train.py with the common and these overrides into $runs/NAME (log $runs/NAME.log),
# then its checkpoint packed at once: a device call cut short still returns every run that had finished
train_and_pack() {
  local v=$1; shift
  $py train.py "${common[@]}" "$@" hydra.run.dir="$runs/$v" > "$runs/$v.log" 2>&1
  if [ -f "$runs/$v/manifest.json" ]; then
    pack "$v" "$v/checkpoint" "$v/manifest.json" "$v/config.yaml"; echo "$v packed at $(( $(date +%s) - t0 )) s"
  else echo "$v failed:"; tail -n 20 "$runs/$v.log"; fi
}

# repeat N COMPONENT...: the overrides that repeat those mixture components N times
repeat() { local n=$1; shift; for c in "$@"; do printf '++data.mixture.components.%s.repeat=%s ' "$c" "$n"; done; }

# twins N: the mixture with the REG rows whose object has a same-colour, same-shape twin once more (reg_twin), N times
twins() { printf 'data/mixture=mini_world_genixer_s_twins '; repeat "$1" reg_twin; }

# twins_rec N: the same, with the REC rows whose object has such a twin once more too (rec_twin), N times each
twins_rec() { printf 'data/mixture=mini_world_genixer_s_twins_rec '; repeat "$1" reg_twin rec_twin; }

# listener N: twins_rec 2 on the mixture that also asks the world's REC rows the other way round (rec_listener: the
# item question, the box as the answer), N times
listener() { printf 'data/mixture=mini_world_genixer_s_listener '; repeat 2 reg_twin rec_twin; repeat "$1" rec_listener; }

# check_variants: exit 2 naming the known variants when one asked for is not in mix
check_variants() {
  local v
  for v in "${variants[@]}"; do
    [ -n "${mix[$v]+x}" ] || { echo "unknown variant: $v (known: ${!mix[*]})"; exit 2; }
  done
}
