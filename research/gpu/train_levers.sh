#!/usr/bin/env bash
# Issue 13's untried training levers, two seeds each, on one lent GPU inside one device call,
# and the GPU checks of the training switches (bf16 and fp16 autocast, torch.compile, NCCL DDP).
#
#   run (device tool): bash research/gpu/train_levers.sh     carry: [.gpu]
# .gpu/ is described in common.sh; it also holds mt/, the multitracks packed with
# `research/gpu/pack_dataset.py data/multitracks .gpu/mt --bitrate 56k --max-seconds 90`.
#
# Every lever is one change to recipe A (research/gpu/candidates.env) at the same number of
# steps; recipe C is the band-split family on A's training settings. Steps: unpack; run the
# switch checks and a 30-second calibration of all ten runs at once; size one schedule for the
# A runs and one for C from the slowest measured rate so they end before BUDGET_S; stop what is
# left at the deadline; bring back the best checkpoints and every log.
set -u
BUDGET_S=${BUDGET_S:-540}
. research/gpu/common.sh
$PY research/gpu/unpack_dataset.py .gpu/musdb7 /tmp/musdb7 || exit 4
[ "${MODE:-levers}" = long ] || $PY research/gpu/unpack_dataset.py .gpu/mt /tmp/mt || exit 4
COMMON="--data /tmp/musdb7 --device $DEVICE --set data.num_workers=1 --set train.warmup_steps=50"
A=$(recipe A); C=$(recipe C)
declare -A LEVER=(
  [a_base]=""
  [a_mixc]="--set train.mixture_consistency_weight=1.0"
  [a_warp]="--set data.augment.pitch_shift_semitones=2 --set data.augment.time_stretch=0.12 --set data.augment.warp_probability=0.2 --set data.num_workers=6"
  [a_mt]="--set data.extra=[/tmp/mt] --set data.weights=[0.7,0.3]"
  [c_base]=""
)
recipe_of() { case $1 in c_*) echo "$C";; *) echo "$A";; esac; }

if [ "${MODE:-levers}" = long ]; then
  # second call: the two that gained, on long schedules of fixed length (recipe A's is the previous
  # call's 5400-step baseline, so each validation compares with that run's at the same step)
  for s in 1 2; do
    train a_mixc_long_s$s $A ${LEVER[a_mixc]} --set train.seed=$s --set train.max_steps=5400 \
      --set train.val_every_steps=900 --set train.checkpoint_every_steps=900
    train c_long_s$s $C --set train.seed=$s --set train.max_steps=${N_C_LONG:-3600} \
      --set train.val_every_steps=600 --set train.checkpoint_every_steps=600
  done
  wait_runs 30
  collect a_mixc_long_s1 a_mixc_long_s2 c_long_s1 c_long_s2
  exit 0
fi
# the training switches on CUDA: 150 steps each, beside the calibration
SHORT="--set train.max_steps=150 --set train.val_every_steps=150 --set train.val_tracks=2"
train chk_bf16 $A $SHORT --set train.amp=bf16
train chk_fp16 $A $SHORT --set train.amp=fp16
train chk_compile $A $SHORT --set train.compile=true
(cd /tmp && exec $PY -m torch.distributed.run --standalone --nproc_per_node=1 -m stemsplit train $COMMON \
  -o $RUNS/chk_ddp $A $SHORT) > $RUNS/chk_ddp.log 2>&1 &
echo $! > $RUNS/chk_ddp.pid

for r in "${!LEVER[@]}"; do train cal_$r $(recipe_of $r) ${LEVER[$r]} $UNCAPPED; done
sleep ${CAL_S:-30}
declare -A R
for r in "${!LEVER[@]}"; do R[$r]=$(rate cal_$r); kill $(cat $RUNS/cal_$r.pid) 2>/dev/null; rm $RUNS/cal_$r.pid; done
sleep 3
LEFT=$(( BUDGET_S - $(elapsed) - 60 ))   # 60 s: start-up, validations' share, copying
# (the first call sized every A run by the slowest, the pitch/tempo run, whose loader is CPU-bound:
# 2.3 it/s with six workers beside thirteen other runs; that gave 780 steps, compared at equal steps)
# no rate printed yet (a run not started in time) counts as 4 it/s, a quarter of the last call's
N_A=$(sized_steps 0.8 0 ${R[a_base]} ${R[a_mixc]} ${R[a_warp]} ${R[a_mt]}); N_C=$(sized_steps 0.8 0 ${R[c_base]})
echo "calibration at $(elapsed)s: $(for r in "${!R[@]}"; do echo -n "$r ${R[$r]} it/s; "; done)-> A $N_A steps, C $N_C; $LEFT s left"
for r in "${!LEVER[@]}"; do
  n=$N_A; [ ${r:0:1} = c ] && n=$N_C
  for s in 1 2; do
    train ${r}_s$s $(recipe_of $r) ${LEVER[$r]} --set train.seed=$s --set train.max_steps=$n \
      --set train.val_every_steps=$(( n / 6 )) --set train.checkpoint_every_steps=$(( n / 6 ))
  done
done
wait_runs 35
grep -h "done:\|Error\|error" $RUNS/chk_*.log | tail -20
# $OUT takes 8 files of 64 MiB in all: seed 1 of the baseline, the multitracks run (for the
# out-of-domain songs here), the band-split run and the best other A lever (both seeds' last validation)
last_mean() { grep -o 'mean [-0-9.]* dB' $RUNS/$1.log | tail -1 | cut -d' ' -f2; }
BEST=$(for r in a_mixc a_warp; do echo "$r $(last_mean ${r}_s1) $(last_mean ${r}_s2)"; done \
  | $PY -c "import sys; print(max((sum(float(x or -99) for x in l.split()[1:]), l.split()[0]) for l in sys.stdin)[1])")
collect a_base_s1 a_mt_s1 c_base_s1 ${BEST}_s1
