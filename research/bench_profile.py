"""Where a `stemsplit separate` run's CPU time goes, stage by stage (docs/benchmarks.md's profile).

usage: bench_profile.py [SONG] [--model NAME_OR_PATH] [--seconds 180]

One file-to-stems pass (`Separator.write_stems`, as `stemsplit separate` runs it) under cProfile with
a CPU-time clock, the network run inline on this thread with one ONNX Runtime thread, so that
every stage's figure is CPU time of its own and nothing overlaps: the sum is what the two cores
share in a real run. Without SONG a generated stereo song of --seconds is used. Start-up (imports,
loading the model) is measured on its own, in a fresh process.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: another checkout can be profiled

# stage -> the functions (file, name) whose cumulative CPU time it is; nested stages are taken out
# of the stage around them (the network runs inside _start_one here, the iSTFT inside _finish_one)
CUMULATIVE = {
    "network": [("onnx_runner.py", "stem_magnitudes"), ("onnx_runner.py", "stem_masks"),
                ("onnx_runner.py", "stem_waveforms")],
    "analysis": [("engine.py", "_start_one")],
    "synthesis": [("stft_numpy.py", "frames_inverse")],
    "finish": [("engine.py", "_finish_one")],
    "reading": [("io.py", "iter_blocks"), ("convert.py", "process"), ("convert.py", "flush")],
    "writing": [("stem_writer.py", "write"), ("stem_writer.py", "finish")],
    "fft_inverse": [("_pocketfft.py", "irfft")],
    "fft_forward": [("_pocketfft.py", "rfft")],
}


class _Inline:
    """An executor that runs each call at once on the calling thread (no overlap to blur the figures)."""

    def __init__(self, *args, **kwargs):
        pass

    def submit(self, fn, *args):
        future = Future()
        future.set_result(fn(*args))
        return future

    def shutdown(self, **kwargs):
        pass


def profile(song: Path, model: str | None) -> dict[str, float]:
    import stemsplit.separation.engine as engine
    from stemsplit.pipelines.separator import Separator

    engine.ThreadPoolExecutor = _Inline
    separator = Separator(model, runtime="onnx", threads=1)
    with tempfile.TemporaryDirectory(prefix="stemsplit-profile-") as tmp:
        targets = {s: Path(tmp) / f"{s}.wav" for s in separator.stems}
        separator.write_stems(song, targets, separator.stems, False, "PCM_16", "rescale")  # first-run allocations
        prof = cProfile.Profile(timer=time.process_time)
        prof.enable()
        separator.write_stems(song, targets, separator.stems, False, "PCM_16", "rescale")
        prof.disable()
    stats = pstats.Stats(prof).stats
    cum = {key: sum(ct for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.items()
                    if any(file.endswith(f) and func == n for f, n in names))
           for key, names in CUMULATIVE.items()}
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
    stages = {
        "network (ONNX Runtime)": cum["network"],
        "forward STFT: the FFTs": cum["fft_forward"],
        "forward STFT: frames, window, |X|": cum["analysis"] - cum["network"] - cum["fft_forward"],
        "inverse STFT: the FFTs": cum["fft_inverse"],
        "inverse STFT: window, overlap-add, envelope": cum["synthesis"] - cum["fft_inverse"],
        "masking (mask x mixture spectrum)": cum["finish"] - cum["synthesis"],
        "reading and resampling": cum["reading"],
        "writing (16-bit conversion, files)": cum["writing"],
    }
    stages["segments, cross-fades, the rest"] = total - sum(stages.values())
    return stages


_STARTUP = """
import time
c = time.process_time()
from stemsplit.cli import app  # noqa: F401  (what `stemsplit separate` imports)
from stemsplit.pipelines.separator import Separator
Separator({model!r}, runtime="onnx")
print(time.process_time() - c)
"""


def startup(model: str | None) -> float:
    out = subprocess.run([sys.executable, "-c", _STARTUP.format(model=model)], capture_output=True, text=True,
                         check=True, cwd=tempfile.gettempdir())
    return float(out.stdout.split()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("song", type=Path, nargs="?")
    ap.add_argument("--model")
    ap.add_argument("--seconds", type=int, default=180)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemsplit-profile-song-") as tmp:
        song = args.song
        if song is None:
            import stemsplit.pipelines.separator  # noqa: F401  (first: bench_separate puts this checkout first)

            sys.path.insert(0, str(ROOT / "scripts"))
            from bench_separate import make_song

            song = make_song(Path(tmp) / "song.wav", args.seconds)
        totals = profile(song, args.model)
    totals["start-up: imports and loading the model"] = startup(args.model)
    total = sum(totals.values())
    for stage, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:46s} {seconds:6.2f} s  {100 * seconds / total:5.1f} %")
    print(f"  {'total CPU':46s} {total:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
