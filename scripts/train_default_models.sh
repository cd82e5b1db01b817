#!/usr/bin/env bash
# Reproduce the models that ship in stemsplit/pretrained/, start to finish, on a CPU.
#
#   scripts/train_default_models.sh [MUSDB_ROOT]      (default ../shared/data/musdb18-7)
#
# Each model's recipe is its config in configs/ plus its one `stemsplit train` line below:
# the --set flags are the CPU budget it was trained with (steps, excerpt length). For better
# models, train the same configs on the full MUSDB18/MUSDB18-HQ on a GPU with a larger
# train.max_steps (or none), and through torchrun for several GPUs (see the README).
# The three runs are independent; the shipped ones ran two at a time, one thread each.
set -euo pipefail
MUSDB_ROOT=${1:-../shared/data/musdb18-7}
DATA=${DATA:-data/musdb18-7}
RUNS=${RUNS:-runs/default-models}
EVAL=${EVAL:-eval/default-models}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

[ -f "$DATA/dataset.json" ] || stemsplit prepare musdb --root "$MUSDB_ROOT" --out "$DATA"

stemsplit train -c configs/lstm.yaml -d "$DATA" -o "$RUNS/lstm" --device cpu --set train.max_steps=1600 --set train.warmup_steps=50 --set data.excerpt_seconds=4.0 --set train.val_every_steps=100 --set train.checkpoint_every_steps=50
stemsplit train -c configs/unet.yaml -d "$DATA" -o "$RUNS/unet" --device cpu --set train.max_steps=700 --set train.warmup_steps=50 --set train.val_every_steps=100 --set train.checkpoint_every_steps=50
stemsplit train -c configs/mask_cnn.yaml -d "$DATA" -o "$RUNS/mask_cnn" --device cpu --set train.max_steps=900 --set train.warmup_steps=50 --set data.excerpt_seconds=1.0 --set train.val_every_steps=100 --set train.checkpoint_every_steps=50

for name in lstm unet mask_cnn; do
  python scripts/package_models.py add "$name" "$RUNS/$name"
done
stemsplit evaluate --data "$DATA" --split valid --model lstm --model unet --model mask_cnn \
  --oracle --stft-n-fft 4096 --stft-hop 1024 --out "$EVAL"
python scripts/package_models.py score "$EVAL"
