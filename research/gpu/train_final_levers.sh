#!/usr/bin/env bash
# Issue 13: the two training levers not yet measured, pretraining on generated songs and a final
# fit on train+valid, on the wide band-split network's GPU stage, two seeds each, on one lent GPU
# inside one device call.
#
#   run (device tool): BUDGET_S=570 bash research/gpu/train_final_levers.sh
#   carry: [.gpu/src, .gpu/musdb7, .gpu/whl]       (.gpu/ is described in common.sh)
#
# The control is w_long (train_wide_long.sh, fourth GPU round): recipe C, mixture consistency,
# feature and hidden size 96, 2400 steps on MUSDB18-7's 80 train tracks, its best checkpoint;
# on the real valid data its two seeds score 4.28 and 4.15 dB mean median gSDR. Every run here
# keeps that recipe and those 2400 steps and changes one thing:
#   syn      first pretrain on songs of `stemsplit prepare synth` (six generators of 20 songs of
#            30 s, 60 minutes, made here while the other runs start) for as many steps as the
#            deadline leaves, then the control's 2400 steps on MUSDB from its last checkpoint.
#            The pretraining draws only generated songs (data.weights [0, 1, ...]) but keeps
#            MUSDB as --data, so its input statistics and its validation are MUSDB's.
#   sub66    MUSDB with 14 of the 80 train tracks left out (a seeded choice): what 14 tracks more
#            or fewer are worth, measured on valid, a stand-in for the final fit's +14
#   tv       the final fit: data.train_on_valid, 94 tracks. Its validation is not held out, so
#            it keeps the step count of the control and its last checkpoint, and is judged on
#            the held-out multitrack songs only (after the CPU fine-tune of the shipped recipe)
# Back in $OUT (8 files at most): sub66_s?.ckpt and syn_s?.ckpt (best, like the control),
# tv_s?.ckpt (last), pre.tar (the two pretrained stages' last checkpoints), logs.tar.gz.
# Measured on an H200 (README, fifth round): generating and preparing the songs took 233 s,
# 45 s of it generating, and the four trainings beside it ran at 3.7 it/s meanwhile instead of
# about 8, so the deadline left 300 pretraining steps and the syn runs stopped near step 1200 of
# 2400; a second call finished them (`stemsplit train --resume /tmp/runs/syn_s1`, the machine
# still warm, carry [.gpu/src]). The generators now run on one thread each (OMP_NUM_THREADS=1),
# which should shorten the preparing; not yet measured there.
# A dry run on a 2-core CPU:
#   STEPS=6 PRE_STEPS=4 SYNTH_TRACKS=2 SYNTH_SECONDS=8 BUDGET_S=400 DEVICE=cpu SKIP_WHEELS=1
#   PY=$PWD/.venv/bin/python OUT=/tmp/out EXTRA="--set train.batch_size=2 --set train.val_tracks=1
#   --set train.val_excerpts=2" bash research/gpu/train_final_levers.sh
set -u
BUDGET_S=${BUDGET_S:-570}
. research/gpu/common.sh
STEPS=${STEPS:-2400}
$PY research/gpu/unpack_dataset.py .gpu/musdb7 /tmp/musdb7 || exit 4
echo "unpacked at $(elapsed)s"

# sub66: the same cache, 14 train tracks moved to a split nothing reads; the input statistics
# stay those of all 80 (stats_tracks), so only the draws differ
rm -rf /tmp/musdb66 && mkdir -p /tmp/musdb66 && ln -s /tmp/musdb7/tracks /tmp/musdb66/tracks
$PY - <<'PY' || exit 5
import json, random
meta = json.load(open("/tmp/musdb7/dataset.json"))
train = sorted(meta["splits"]["train"])
held = set(random.Random(66).sample(train, 14))
meta["splits"]["train"] = [t for t in train if t not in held]
meta["splits"]["held"] = sorted(held)
for name in held:
    meta["tracks"][name]["split"] = "held"
json.dump(meta, open("/tmp/musdb66/dataset.json", "w"), indent=1)
print("sub66 leaves out:", "; ".join(sorted(held)))
PY

W="$(recipe C) --set train.mixture_consistency_weight=1.0 --set model.feature_size=96 --set model.hidden_size=96"
SCHED="--set train.max_steps=$STEPS --set train.val_every_steps=$(( STEPS / 6 )) --set train.checkpoint_every_steps=$(( STEPS / 6 ))"
COMMON="--data /tmp/musdb7 --device $DEVICE --set data.num_workers=1 --set train.warmup_steps=50 ${EXTRA:-}"
for s in 1 2; do
  train tv_s$s $W $SCHED --set train.seed=$s --set data.train_on_valid=true
  (COMMON="--data /tmp/musdb66 ${COMMON#--data /tmp/musdb7}"; train sub66_s$s $W $SCHED --set train.seed=$s)
done

# the generated songs, six generators side by side (one thread each)
GEN=""
for g in 1 2 3 4 5 6; do
  (cd /tmp && OMP_NUM_THREADS=1 $PY -m stemsplit prepare synth --tracks ${SYNTH_TRACKS:-20} --seconds ${SYNTH_SECONDS:-30} \
     --seed $g --valid-fraction 0 --out /tmp/synth_$g > $RUNS/synth_$g.txt 2>&1) &
  GEN="$GEN $!"
done
wait $GEN
SYNTH=$(ls -d /tmp/synth_? | paste -sd, -)
echo "generated songs at $(elapsed)s: $(du -sh /tmp/synth_1 | cut -f1) per generator"
ls /tmp/synth_?/dataset.json > /dev/null || { tail -3 $RUNS/synth_*.txt; exit 6; }

# pretraining steps: what the slowest running rate leaves before the deadline after the MUSDB
# stage's STEPS (45 s: both stages' start-up and validations, 40 s: stopping and copying)
sleep 5
LEFT=$(( BUDGET_S - $(elapsed) - 85 ))
R=$($PY -c "print(min([float(x) for x in '$(rate tv_s1) $(rate sub66_s1)'.split()] or [7.0]))")
PRE=${PRE_STEPS:-$($PY -c "print(max(300, int($R * 0.92 * $LEFT - $STEPS) // 100 * 100))")}
echo "rate $R it/s, $LEFT s left -> $PRE pretraining steps"
chain() {  # seed: pretrain on the generated songs, then the control's schedule on MUSDB
  local s=$1
  train syn_pre_s$s $W --set train.seed=$s --set train.max_steps=$PRE --set train.val_every_steps=$(( PRE / 2 )) \
    --set train.checkpoint_every_steps=$(( PRE / 2 )) --set "data.extra=[$SYNTH]" \
    --set "data.weights=[0$(printf ',1%.0s' 1 2 3 4 5 6)]"
  wait $(cat $RUNS/syn_pre_s$s.pid)
  train syn_s$s $W $SCHED --set train.seed=$s --set train.init_from=$RUNS/syn_pre_s$s/last.ckpt
  wait $(cat $RUNS/syn_s$s.pid)
}
for s in 1 2; do chain $s & echo $! > $RUNS/chain_s$s.pid; done
wait_runs 40

for s in 1 2; do
  for r in sub66 syn; do [ -f $RUNS/${r}_s$s/best.ckpt ] && half $RUNS/${r}_s$s/best.ckpt $OUT/${r}_s$s.ckpt; done
  [ -f $RUNS/tv_s$s/last.ckpt ] && half $RUNS/tv_s$s/last.ckpt $OUT/tv_s$s.ckpt
  [ -f $RUNS/syn_pre_s$s/last.ckpt ] && half $RUNS/syn_pre_s$s/last.ckpt /tmp/syn_pre_s$s.ckpt
done
tar -cf $OUT/pre.tar -C /tmp $(cd /tmp && ls syn_pre_s?.ckpt 2>/dev/null)
collect_logs
