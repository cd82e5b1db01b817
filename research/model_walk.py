"""Trace how a model name becomes a runner: the modules stemsplit's own code passes through.

A "stay" is a run of consecutive calls inside one module; a "room" is a distinct module; a
"climb" is a stay in a module of a higher layer than the stay before it (cli > pipelines >
separation/checkpoint/pretrained/formats/hub > models > config/settings/errors).
usage: python research/model_walk.py [MODEL]   (runs run_separate on a request with no inputs: the resolution alone)
"""
import sys

LAYERS = [("stemsplit.cli", 0), ("stemsplit.pipelines", 1), ("stemsplit.models", 3)]
BASE = ("stemsplit.config", "stemsplit.settings", "stemsplit.errors", "stemsplit.onnx_format",
        "stemsplit.atomic")


# the checks the resolution used to repeat, and the steps that load the model
COUNTED = {"check_runtime", "_checked", "checked", "resolve", "load_registry", "registry", "load_onnx_runner",
           "load_checkpoint", "read_checkpoint", "pick_runtime"}


def layer(mod: str) -> int:
    if mod.startswith(BASE):
        return 4
    for prefix, n in LAYERS:
        if mod.startswith(prefix):
            return n
    return 2


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else None
    import tempfile
    from pathlib import Path

    from stemsplit.pipelines.separate import SeparateRequest, run_separate

    class QuietUI:
        def __getattr__(self, name):
            return lambda *a, **k: None

    stays: list[str] = []
    calls: dict[str, int] = {}

    def prof(frame, event, arg):
        if event != "call":
            return
        mod = frame.f_globals.get("__name__", "")
        if not mod.startswith("stemsplit"):
            return
        if frame.f_code.co_name in COUNTED:
            key = f"{mod}.{frame.f_code.co_qualname}"
            calls[key] = calls.get(key, 0) + 1
        if not stays or stays[-1] != mod:
            stays.append(mod)

    sys.setprofile(prof)
    with tempfile.TemporaryDirectory() as tmp:
        run_separate(SeparateRequest(inputs=[], out_dir=Path(tmp), model=model), QuietUI())
    sys.setprofile(None)
    climbs = sum(1 for a, b in zip(stays, stays[1:]) if layer(b) < layer(a))
    print(f"{len(stays)} stays in {len(set(stays))} rooms, {climbs} climbs back up")
    for hub in ("stemsplit.resolver", "stemsplit.separation.runtimes"):  # after / before the resolver
        if hub in stays:
            first, last = stays.index(hub), len(stays) - stays[::-1].index(hub)
            span = stays[first:last]
            up = sum(1 for a, b in zip(span, span[1:]) if layer(b) < layer(a))
            print(f"  of which the resolution ({hub}, first to last stay): {len(span)} stays in "
                  f"{len(set(span))} rooms, {up} climbs back up")
    for key, n in sorted(calls.items()):
        print(f"  called {n}x: {key}")
    for s in stays:
        print("  " * layer(s) + s)


if __name__ == "__main__":
    main()
