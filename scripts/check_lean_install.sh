#!/usr/bin/env bash
# The lean install, checked end to end: the package with no extras into a fresh venv, from the
# lock (requirements/base.txt, then the package itself with --no-deps), then `stemsplit separate`
# on a generated song, with no torch anywhere in that venv; also stemsplit.Separator on an array,
# and `stemsplit train`'s one line naming the train extra.
#
# usage: scripts/check_lean_install.sh [--keep DIR]
#   --keep DIR  build the venv in DIR and leave it there (scripts/benchmark.py measures it);
#               by default everything lives in a temporary folder that is removed at the end.
# env: PYTHON (default python3) makes the venv. pip uses its usual cache; nothing is fetched
#      beyond the package index.
#
# Prints the venv's size last, as "lean venv: <MB> MB (<du -sh>) at <path>". Exit 0 when the
# four stems were written and torch is absent; otherwise 1 with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
KEEP=""
if [ "${1:-}" = "--keep" ]; then
  KEEP="${2:?--keep needs a folder}"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/stemsplit-lean.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
VENV="${KEEP:-$WORK/venv}"

say() { echo "lean-check: $*"; }
die() { echo "lean-check: FAILED: $*" >&2; exit 1; }

if [ -n "$KEEP" ] && [ -e "$KEEP" ]; then  # replace an old venv, never anything else
  if [ -f "$KEEP/pyvenv.cfg" ] || [ -z "$(ls -A "$KEEP")" ]; then rm -rf "$KEEP"; else die "--keep $KEEP: exists and is not a venv"; fi
fi

# Build from a snapshot of the source, so pip's in-tree build leaves no build/ or egg-info in
# the working tree (and a file someone saves mid-build cannot end up half in the wheel).
SRC="$WORK/src"
mkdir -p "$SRC"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$SRC/"
LOCK="$ROOT/requirements/base.txt"
(cd "$ROOT" && tar --exclude=__pycache__ --exclude='*.pyc' -cf - stemsplit) | (cd "$SRC" && tar -xf -)

start=$(date +%s)
say "fresh venv in $VENV ($("$PYTHON" --version 2>&1))"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
say "pip install -r requirements/base.txt, then $ROOT (no extras, not editable, --no-deps)"
"${PIP[@]}" install -r "$LOCK" || die "pip install -r $LOCK failed"
"${PIP[@]}" install --no-deps "$SRC" || die "pip install of the package without extras failed"
"$VENV/bin/python" -m pip --disable-pip-version-check check >/dev/null \
  || die "the lean venv's requirements are inconsistent: $("$VENV/bin/python" -m pip check | head -n 3)"

# torch, torchaudio, musdb, museval belong to the train extra: none may come in with the base install.
for dist in torch torchaudio musdb museval; do
  if "$VENV/bin/python" -m pip --disable-pip-version-check show -q "$dist" >/dev/null 2>&1; then
    die "$dist is installed by the base install without extras; it belongs to the [train] extra"
  fi
done

say "generating a 10 s stereo song"
SONG="$WORK/song dir/lean song.wav"  # spaces: the path reaches ffmpeg/soundfile as one argument
mkdir -p "$(dirname "$SONG")"
"$VENV/bin/python" - "$SONG" <<'EOF'
import sys

import numpy as np
import soundfile as sf

sr, seconds = 44100, 10
t = np.arange(sr * seconds) / sr
rng = np.random.default_rng(0)
tone = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 110 * t)
beat = 0.3 * np.exp(-30 * (t % 0.5)) * rng.standard_normal(t.size)
song = np.stack([tone + beat, 0.8 * tone + beat], axis=1) + 0.01 * rng.standard_normal((t.size, 2))
sf.write(sys.argv[1], song.astype(np.float32), sr, subtype="PCM_16")
EOF

OUT="$WORK/out"
say "stemsplit separate (default model, default runtime)"
(cd "$WORK" && "$VENV/bin/stemsplit" separate "$SONG" -o "$OUT") || die "stemsplit separate failed in the lean venv"

missing=()
for stem in vocals drums bass other; do
  found=$(find "$OUT" -path "*/lean song/$stem.wav" -size +1k | head -n 1)
  [ -n "$found" ] || missing+=("$stem")
done
[ ${#missing[@]} -eq 0 ] || die "stems not written under $OUT: ${missing[*]}"
say "four stems written: $(cd "$OUT" && find . -name '*.wav' | sort | tr '\n' ' ')"

"$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)" \
  || die "torch is importable in the lean venv"
say "torch is not installed in the lean venv"

say "the Python API: stemsplit.Separator().separate on an array"
"$VENV/bin/python" - "$SONG" <<'EOF' || die "stemsplit.Separator failed in the lean venv"
import sys

import soundfile as sf

import stemsplit

audio, rate = sf.read(sys.argv[1], dtype="float32", always_2d=True)
stems = stemsplit.Separator().separate(audio.T, rate)
assert sorted(stems) == ["bass", "drums", "other", "vocals"], sorted(stems)
assert all(s.shape == audio.T.shape for s in stems.values()), [s.shape for s in stems.values()]
assert "torch" not in sys.modules
EOF

# Without the extra, a training command stops with one line that says what to install.
if (cd "$WORK" && "$VENV/bin/stemsplit" train >"$WORK/train.out" 2>&1); then
  die "stemsplit train ran without torch"
fi
if ! grep -qF 'pip install ".[train]"' "$WORK/train.out" || [ "$(grep -c . "$WORK/train.out")" -ne 1 ]; then
  die "stemsplit train without torch did not say, in one line, to install the train extra: $(cat "$WORK/train.out")"
fi
say "stemsplit train without torch: $(cat "$WORK/train.out")"

mb=$(du -sm "$VENV" | cut -f1)
human=$(du -sh "$VENV" | cut -f1)
say "done in $(( $(date +%s) - start )) s"
echo "lean venv: $mb MB ($human) at $VENV"
