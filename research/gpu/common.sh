# Shared by the scripts in research/gpu/ that train on a lent GPU inside one device call (sourced).
#
# .gpu/ (ignored by git, made here before the call):
#   src/      stemsplit's code at a fixed commit (git archive, without the shipped weights)
#   musdb7/   MUSDB18-7 packed by research/gpu/pack_dataset.py (and mt/, the multitracks, if used)
#   whl/      soundfile, cffi, pycparser wheels (the machine has torch, typer, rich, yaml), and soxr
#             for the scripts that prepare audio there (train_final_levers.sh: `prepare synth`)
# The caller sets BUDGET_S (seconds for the whole script) before sourcing this.
T0=$(date +%s)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
RUNS=/tmp/runs; rm -rf $RUNS; mkdir -p $RUNS   # a warm machine keeps the last call's runs
PY=${PY:-python3}; DEVICE=${DEVICE:-cuda}
[ -n "${SKIP_WHEELS:-}" ] || $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 3
REPO=$PWD
export PYTHONPATH=/tmp/site:$REPO/.gpu/src PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
elapsed() { echo $(( $(date +%s) - T0 )); }
. "$REPO/research/gpu/candidates.env"   # the recipes: A_CONFIG/A_SETS, B_..., C_...
recipe() { local c=${1}_CONFIG s=${1}_SETS; echo "-c $REPO/.gpu/src/${!c} ${!s}"; }

train() {  # name, then stemsplit train arguments (COMMON first)
  local name=$1; shift
  # from /tmp: run from the repo root, `-m stemsplit` would import the working tree, not .gpu/src
  (cd /tmp && exec $PY -m stemsplit train $COMMON -o $RUNS/$name "$@") > $RUNS/$name.log 2>&1 &
  echo $! > $RUNS/$name.pid
}

rate() { grep -o '[0-9.]* it/s' $RUNS/$1.log | tail -1 | cut -d' ' -f1; }

# a calibration run's flags: no step cap, no validation, no checkpoint before it is stopped
UNCAPPED="--set train.max_steps=1000000 --set train.val_every_steps=1000000 --set train.checkpoint_every_steps=1000000"

sized_steps() {  # share cap rate...: the steps the slowest rate (it/s; none yet: 4) reaches in
  # $LEFT seconds times share, in whole minutes of 60 steps, at least 300 and at most cap (0: none)
  local share=$1 cap=$2; shift 2
  $PY -c "r=min([float(x) for x in '$*'.split()] or [4.0]); n=max(300, int(r * $LEFT * $share / 60) * 60); print(min(n, $cap) if $cap else n)"
}

wait_runs() {  # until every *_s?.pid run ends or BUDGET_S - $1 seconds have passed; then SIGTERM
  while [ $(elapsed) -lt $(( BUDGET_S - $1 )) ]; do
    local alive=0 p; for p in $RUNS/*_s?.pid; do kill -0 $(cat $p) 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 5
  done
  for p in $RUNS/*.pid; do kill -TERM $(cat $p) 2>/dev/null; done; sleep 8   # the trainer saves and exits
  echo "training stopped at $(elapsed)s"
}

half() {  # checkpoint, out: as the package stores it (fp16, without a last.ckpt's optimizer state)
  $PY - "$1" "$2" <<'PY'
import sys, torch
c = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
c.pop("train_state", None)
c["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in c["state_dict"].items()}
torch.save(c, sys.argv[2])
PY
}

collect_logs() {  # every log (and generator output) in one archive, the validations, what came back
  tar -czf $OUT/logs.tar.gz -C $RUNS $(cd $RUNS && ls *.log *.txt */metrics.csv */run.json */config.yaml 2>/dev/null)
  grep -h "validation at\|done:\|stopped\|final fit" $RUNS/*.log | tail -60
  ls -la $OUT; echo "finished at $(elapsed)s"
}

collect() {  # run names: their best checkpoints (fp16, as the package stores them), every log
  local r
  for r in "$@"; do
    [ -f $RUNS/$r/best.ckpt ] && half $RUNS/$r/best.ckpt $OUT/$r.ckpt
  done
  collect_logs
}
