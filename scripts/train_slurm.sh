#!/bin/bash
# Multi-node training through torchrun under SLURM: one torchrun per node, GPUS_PER_NODE
# workers each. Submit from the repository root:
#
#   sbatch --nodes=2 scripts/train_slurm.sh configs/<model>.yaml data/musdb18 runs/<model>
#
# A job that is preempted or hits its time limit gets SIGTERM (--signal below asks for it
# 120 s early); every rank saves at the same step and rank 0 writes runs/.../last.ckpt.
# Submitting the same command again continues the run: an existing last.ckpt means --resume.
#
#SBATCH --job-name=stemsplit-train
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=32
#SBATCH --time=24:00:00
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --output=%x-%j.out
set -euo pipefail

CONFIG=${1:?usage: sbatch scripts/train_slurm.sh CONFIG DATA OUT [--set key=value ...]}
DATA=${2:?missing DATA (a prepared dataset folder)}
OUT=${3:?missing OUT (the run folder)}
shift 3
GPUS_PER_NODE=${GPUS_PER_NODE:-4}

# The first node of the allocation hosts the rendezvous.
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
MASTER_PORT=${MASTER_PORT:-29500}
# Workers share the node's cores; more threads per worker than this only fight each other.
export OMP_NUM_THREADS=$(( ${SLURM_CPUS_PER_TASK:-8} / GPUS_PER_NODE ))

if [ -f "$OUT/last.ckpt" ] || [ -f "$OUT/last.prev.ckpt" ]; then
    ARGS=(--resume "$OUT" "$@")
else
    ARGS=(--config "$CONFIG" --data "$DATA" --out "$OUT" "$@")
fi

# srun starts one torchrun per node; torchrun starts GPUS_PER_NODE ranks and forwards
# SIGTERM to them. exec so that the signal reaches srun directly.
exec srun --kill-on-bad-exit=1 torchrun \
    --nnodes="$SLURM_JOB_NUM_NODES" \
    --nproc_per_node="$GPUS_PER_NODE" \
    --rdzv_id="$SLURM_JOB_ID" \
    --rdzv_backend=c10d \
    --rdzv_endpoint="$MASTER_ADDR:$MASTER_PORT" \
    -m stemsplit train "${ARGS[@]}"
