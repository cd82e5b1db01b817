#!/usr/bin/env bash
# Issue 13: the wide band-split network with and without the multitracks from the first step,
# and a larger network, two seeds each, on one lent GPU inside one device call.
#
#   run (device tool): BUDGET_S=470 bash research/gpu/train_wide_long.sh            (first call)
#                      RUN=h_mt CAL_S=20 BUDGET_S=330 bash research/gpu/train_wide_long.sh  (second)
#   carry: [.gpu/src, .gpu/musdb7, .gpu/mt, .gpu/whl]      (.gpu/ is described in common.sh;
#   mt/ is `research/gpu/pack_dataset.py data/multitracks .gpu/mt --bitrate 56k --max-seconds 90`:
#   the middle 90 s of each song; training draws only from the train split, so the two held-out
#   songs, the valid split of data/multitracks, are never trained on)
#
# The baseline is the shipped default's GPU stage, w_mixc (train_band_split.sh: recipe C, mixture
# consistency, feature and hidden size 96, 2580 steps, MUSDB only). Every run keeps everything
# else and takes the longest schedule the deadline allows, the same for all runs of a call
# (measured: 2400 steps for the first call's four, 1500 for the second's two):
#   w_long   MUSDB only, the baseline's data on this call's schedule
#   w_mt     30 % of the excerpts from the multitracks (data.weights [0.7, 0.3], the share that
#            cost nothing on valid as a CPU fine-tune), from the first step
#   h_mt     a larger network for a slower `--model hq` entry: feature and hidden size 128,
#            three blocks (4.11M parameters), with w_mt's data
# Steps: unpack; a CAL_S-second calibration of the call's runs side by side; size one schedule
# from the slowest rate so it ends before BUDGET_S; stop what is left at the deadline; bring
# back every best checkpoint (fp16) and every log. A dry run on a 2-core CPU:
#   RUN=w_mt MAX_STEPS=12 CAL_S=20 BUDGET_S=200 DEVICE=cpu SKIP_WHEELS=1 PY=$PWD/.venv/bin/python
#   OUT=/tmp/out EXTRA="--set train.batch_size=2 --set train.val_tracks=1 --set train.val_excerpts=2"
#   bash research/gpu/train_wide_long.sh
set -u
BUDGET_S=${BUDGET_S:-500}
. research/gpu/common.sh
$PY research/gpu/unpack_dataset.py .gpu/musdb7 /tmp/musdb7 || exit 4
$PY research/gpu/unpack_dataset.py .gpu/mt /tmp/mt || exit 4
COMMON="--data /tmp/musdb7 --device $DEVICE --set data.num_workers=1 --set train.warmup_steps=50 ${EXTRA:-}"
W="$(recipe C) --set train.mixture_consistency_weight=1.0"
WIDE="--set model.feature_size=96 --set model.hidden_size=96"
MT="--set data.extra=[/tmp/mt] --set data.weights=[0.7,0.3]"
HQ="--set model.feature_size=128 --set model.hidden_size=128 --set model.num_blocks=3"
declare -A LEVER=([w_long]="$WIDE" [w_mt]="$WIDE $MT" [h_mt]="$HQ $MT")
RUN=${RUN:-w_long w_mt}

for r in $RUN; do for s in 1 2; do train cal_${r}_$s $W ${LEVER[$r]} $UNCAPPED; done; done
sleep ${CAL_S:-25}
RATES=""
for r in $RUN; do for s in 1 2; do
  RATES="$RATES $(rate cal_${r}_$s)"; kill $(cat $RUNS/cal_${r}_$s.pid) 2>/dev/null; rm $RUNS/cal_${r}_$s.pid
done; done
sleep 3
LEFT=$(( BUDGET_S - $(elapsed) - 50 ))   # 50 s: the validations' share, stopping, copying
N=$(sized_steps 0.85 ${MAX_STEPS:-0} $RATES)
echo "calibration at $(elapsed)s: rates$RATES it/s -> $N steps; $LEFT s left"
for r in $RUN; do for s in 1 2; do
  train ${r}_s$s $W ${LEVER[$r]} --set train.seed=$s --set train.max_steps=$N \
    --set train.val_every_steps=$(( N / 6 )) --set train.checkpoint_every_steps=$(( N / 6 ))
done; done
wait_runs 30
collect $(for r in $RUN; do echo ${r}_s1 ${r}_s2; done)
