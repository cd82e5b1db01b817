#!/usr/bin/env bash
# Train issue 13's candidates side by side on one lent GPU, inside one device call.
#
#   run (device tool): bash scripts/gpu/train_candidates.sh     carry: [.gpu]
#   (MODE=levers for the second call: loss levers on recipe A's long schedule)
# The two recipes, A and B, are in configs/gpu_candidates.env.
#
# .gpu/ (ignored by git, made here before the call):
#   src/      stemsplit's code at a fixed commit (git archive, without the shipped weights)
#   musdb7/   the dataset packed by scripts/gpu/pack_dataset.py
#   whl/      soundfile, cffi, pycparser wheels (the machine has torch, typer, rich, yaml)
#
# Steps: unpack the data; run the fixed-length baselines and a 40-second calibration of the
# long runs at the same time; size the long runs' schedules (max_steps) from the measured
# step rate so that their cosine schedules end before BUDGET_S; stop anything left at the
# deadline (SIGTERM: the trainer saves and exits); copy the best checkpoints (fp16, as the
# package stores them) and every run's log and metrics to $OUT.
set -u
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-500}          # the whole script, from its start
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RUNS=/tmp/runs; mkdir -p $RUNS
PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}
[ -n "${SKIP_WHEELS:-}" ] || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 3
REPO=$PWD
export PYTHONPATH=/tmp/site:$REPO/.gpu/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
$PY scripts/gpu/unpack_dataset.py .gpu/musdb7 /tmp/musdb7 || exit 4
elapsed() { echo $(( $(date +%s) - T0 )); }
COMMON="--data /tmp/musdb7 --device $DEVICE --set data.num_workers=3 --set train.warmup_steps=50"
. "$REPO/configs/gpu_candidates.env"   # A_CONFIG, A_SETS, B_CONFIG, B_SETS: the two recipes
A="-c $REPO/.gpu/src/$A_CONFIG $A_SETS"
B="-c $REPO/.gpu/src/$B_CONFIG $B_SETS"
train() {  # name, then stemsplit train arguments
  local name=$1; shift
  # from /tmp: run from the repo root, `-m stemsplit` would import the working tree, not .gpu/src
  (cd /tmp && exec $PY -m stemsplit train $COMMON -o $RUNS/$name "$@") > $RUNS/$name.log 2>&1 &
  echo $! > $RUNS/$name.pid
}
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
train cal_a $A --set train.max_steps=1000000 --set train.val_every_steps=1000000 --set train.checkpoint_every_steps=1000000
train cal_b $B --set train.max_steps=1000000 --set train.val_every_steps=1000000 --set train.checkpoint_every_steps=1000000
sleep 45
rate() { grep -o '[0-9.]* it/s' $RUNS/$1.log | tail -1 | cut -d' ' -f1; }
R_A=$(rate cal_a); R_B=$(rate cal_b)
kill $(cat $RUNS/cal_a.pid $RUNS/cal_b.pid) 2>/dev/null; sleep 3
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
while [ $(elapsed) -lt $(( BUDGET_S - 40 )) ]; do
  alive=0; for p in $RUNS/*_s?.pid; do kill -0 $(cat $p) 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break; sleep 5
done
for p in $RUNS/*_s?.pid; do kill -TERM $(cat $p) 2>/dev/null; done; sleep 8
echo "training stopped at $(elapsed)s"
for r in $KEEP; do
  [ -f $RUNS/$r/best.ckpt ] && $PY - "$RUNS/$r/best.ckpt" "$OUT/$r.ckpt" <<'PY'
import sys, torch
c = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
c["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in c["state_dict"].items()}
torch.save(c, sys.argv[2])
PY
done
tar -czf $OUT/logs.tar.gz -C $RUNS $(cd $RUNS && ls *.log */metrics.csv */run.json */config.yaml 2>/dev/null)
grep -h "validation at\|done:\|stopped" $RUNS/*.log | tail -40
ls -la $OUT; echo "finished at $(elapsed)s"
