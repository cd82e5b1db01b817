#!/usr/bin/env bash
# Train issue 13's candidates side by side on one lent GPU, inside one device call.
#
#   run (device tool): bash research/gpu/train_candidates.sh     carry: [.gpu]
#   (MODE=levers for the second call: loss levers on recipe A's long schedule)
# The recipes, A and B, are in research/gpu/candidates.env; .gpu/ is described in common.sh.
#
# Steps: unpack the data; run the fixed-length baselines and a 40-second calibration of the
# long runs at the same time; size the long runs' schedules (max_steps) from the measured
# step rate so that their cosine schedules end before BUDGET_S; stop anything left at the
# deadline (SIGTERM: the trainer saves and exits); copy the best checkpoints (fp16, as the
# package stores them) and every run's log and metrics to $OUT.
set -u
BUDGET_S=${BUDGET_S:-500}          # the whole script, from its start
. research/gpu/common.sh
$PY research/gpu/unpack_dataset.py .gpu/musdb7 /tmp/musdb7 || exit 4
COMMON="--data /tmp/musdb7 --device $DEVICE --set data.num_workers=3 --set train.warmup_steps=50"
A=$(recipe A); B=$(recipe B)
if [ "${MODE:-schedule}" = levers ]; then
  # second call: loss levers on recipe A's long schedule (5400 steps, the first call's length), two seeds
  N=5400; V="--set train.max_steps=$N --set train.val_every_steps=900 --set train.checkpoint_every_steps=900"
  for s in 1 2; do
    train a_combo_s$s $A $V --set train.seed=$s --set train.combination_loss=true
    train a_wsdr_s$s $A $V --set train.seed=$s --set train.wsdr_weight=0.5
  done
  KEEP="a_combo_s1 a_combo_s2 a_wsdr_s1 a_wsdr_s2"
else
  # baselines: recipe A at the previous default's 1600 steps, two seeds
  for s in 1 2; do
    train a_base_s$s $A --set train.seed=$s --set train.max_steps=1600 \
      --set train.val_every_steps=400 --set train.checkpoint_every_steps=400
  done
  # calibration: the long runs' recipes, uncapped, for 40 seconds
  train cal_a $A $UNCAPPED; train cal_b $B $UNCAPPED
  sleep 45
  R_A=$(rate cal_a); R_B=$(rate cal_b)
  kill $(cat $RUNS/cal_a.pid $RUNS/cal_b.pid) 2>/dev/null; rm $RUNS/cal_?.pid; sleep 3
  LEFT=$(( BUDGET_S - $(elapsed) - 75 ))   # 75 s: start-up, validations' share, copying
  steps() { $PY -c "r=float('${1:-1}' or 1); print(max(400, int(r * $LEFT * 0.75 / 100) * 100))"; }  # the calibration ran four runs at once too
  N_A=$(steps $R_A); N_B=$(steps $R_B)
  echo "calibration at $(elapsed)s: A $R_A it/s -> $N_A steps; B $R_B it/s -> $N_B steps; $LEFT s left"
  for s in 1 2; do
    train a_long_s$s $A --set train.seed=$s --set train.max_steps=$N_A \
      --set train.val_every_steps=$(( N_A / 6 )) --set train.checkpoint_every_steps=$(( N_A / 6 ))
    train b_long_s$s $B --set train.seed=$s --set train.max_steps=$N_B \
      --set train.val_every_steps=$(( N_B / 6 )) --set train.checkpoint_every_steps=$(( N_B / 6 ))
  done
  KEEP="a_long_s1 a_long_s2 b_long_s1 b_long_s2"
fi
wait_runs 40
collect $KEEP
