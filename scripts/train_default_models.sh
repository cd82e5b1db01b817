#!/usr/bin/env bash
# Reproduce the models that ship in stemsplit/pretrained/, start to finish (on a GPU where
# there is one: DEVICE=cuda|cpu|auto, default auto).
#
#   scripts/train_default_models.sh [MUSDB_ROOT [MULTITRACKS_ROOT]]
#        (defaults ../shared/data/musdb18-7 and ../shared/data/multitracks)
#
# Each model's recipe is its config in configs/ plus the --set flags of the CPU budget it was
# trained with (steps, excerpt length), listed in stemsplit/pretrained/recipes.yaml. For better
# models, train the same configs on the full MUSDB18/MUSDB18-HQ on a GPU with a larger
# train.max_steps (or none), and through torchrun for several GPUs (see the README).
# A recipe may start from an earlier one (init_from: band_split_wide fine-tunes its base stage,
# which is trained but not shipped) and train on the multitracks too (extra_data). Two of the
# multitrack songs are held out of every model as the out-of-domain check: they form that
# dataset's valid split, on which every shipped model is scored beside MUSDB's valid split.
# The first two recipes ran on one H100, four runs at a time
# (scripts/gpu/train_candidates.sh), the two band-split ones on an H200 (scripts/gpu/
# train_levers.sh, train_band_split.sh), all on an Opus copy of the data; the others on this CPU.
set -euo pipefail
MUSDB_ROOT=${1:-../shared/data/musdb18-7}
MT_ROOT=${2:-../shared/data/multitracks}
DATA=${DATA:-data/musdb18-7}
MT_DATA=${MT_DATA:-data/multitracks}
OOD_SONGS=cambridge-how-to-kill-a-conversation-heart-on-my-thumb,eir-potassium
MT_LICENCE="multitracks: Cambridge-MT session tracks (cambridge-*), free for educational, non-commercial use; \
MedleyDB (medleydb-*), CC BY-NC-SA; Mark Boas' multitrack demo (mdn-*) and Everything is Free stems (eir-*), CC0 1.0"
RUNS=${RUNS:-runs/default-models}
EVAL=${EVAL:-eval/default-models}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

[ -f "$DATA/dataset.json" ] || stemsplit prepare musdb --root "$MUSDB_ROOT" --out "$DATA"
[ -f "$MT_DATA/dataset.json" ] || stemsplit prepare folder --root "$MT_ROOT" --out "$MT_DATA" \
  --valid-tracks "$OOD_SONGS" --licence "$MT_LICENCE"

# one "name ship|stage config --set a=b --set c=d ..." line per recipe (stemsplit/pretrained/recipes.yaml)
RECIPES=$(python scripts/package_models.py recipes --runs "$RUNS" --extra multitracks="$MT_DATA")
NAMES=()
while read -r name ship config sets; do
  # shellcheck disable=SC2086  # the --set flags split on spaces on purpose
  stemsplit train -c "$config" -d "$DATA" -o "$RUNS/$name" --device "${DEVICE:-auto}" $sets
  [ "$ship" = ship ] || continue  # a stage that a later recipe starts from
  python scripts/package_models.py add "$name" "$RUNS/$name"
  NAMES+=("$name")
done <<< "$RECIPES"
# the ensembles of those models, weights fitted on the valid split
while read -r name step wiener sets members; do
  [ -n "$name" ] || continue
  SET_FLAGS=()
  if [ "$sets" != "-" ]; then  # ';'-separated: a value may hold commas (a list)
    IFS=';' read -ra SETS <<< "$sets"
    for one in "${SETS[@]}"; do SET_FLAGS+=(--set "$one"); done
  fi
  # shellcheck disable=SC2086  # members split on spaces on purpose
  python scripts/package_models.py ensemble "$name" --members $members --data "$DATA" --step "$step" \
    --wiener-iterations "$wiener" "${SET_FLAGS[@]}"
  NAMES+=("$name")
done <<< "$(python scripts/package_models.py recipes --ensembles)"
MODEL_FLAGS=()
for name in "${NAMES[@]}"; do MODEL_FLAGS+=(--model "$name"); done
stemsplit evaluate --data "$DATA" --split valid "${MODEL_FLAGS[@]}" \
  --oracle --stft-n-fft 4096 --stft-hop 1024 --out "$EVAL"
stemsplit evaluate --data "$MT_DATA" --split valid "${MODEL_FLAGS[@]}" --metrics fast --out "$EVAL-ood"
python scripts/package_models.py score "$EVAL" --data "$DATA" --ood "$EVAL-ood"
