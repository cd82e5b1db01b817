#!/usr/bin/env bash
# Refreshes the lock files in this folder from pyproject.toml (`make lock`): one file per install,
# each pinning every package, direct or indirect, to one exact version. They are universal: one
# file serves Linux, Windows and Apple-silicon macOS on Python 3.10 and newer, with environment
# markers where a package differs (see [tool.uv] in pyproject.toml).
#
#   base.txt         pip install .                (separate on ONNX Runtime, no torch)
#   train.txt        pip install ".[train]"       (prepare, train, evaluate, export)
#   stream.txt       pip install ".[stream]"      (live audio for stemsplit stream)
#   tensorboard.txt  pip install ".[train,tensorboard]"
#   dev.txt          make install                 (everything above but tensorboard, plus the test tools)
#
# usage: requirements/compile.sh [UV]   (UV: the uv binary, default: uv on PATH)
set -euo pipefail
cd "$(dirname "$0")"
UV="${1:-uv}"
compile() {
  local out="$1"; shift
  "$UV" pip compile ../pyproject.toml --universal --python-version 3.10 --quiet \
    --custom-compile-command "make lock" "$@" -o "$out"
  echo "lock: requirements/$out ($(grep -c '==' "$out") pins)"
}
compile base.txt
compile train.txt --extra train
compile stream.txt --extra stream
compile tensorboard.txt --extra train --extra tensorboard
compile dev.txt --extra train --extra stream --extra dev
