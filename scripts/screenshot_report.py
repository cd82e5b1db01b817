"""Take a screenshot of a listening report (`stemsplit evaluate --html`) in headless Chromium.

The README's docs/listening_report.png comes from:

    python scripts/screenshot_report.py eval/report.html docs/listening_report.png

It opens the page from file://, waits until every audio file has loaded its metadata, and shows
the first player as a listener would leave it: the first method's estimates chosen, vocals
soloed, the position at 40 % of the track. ``--page`` shots the whole page instead. The PNG is
saved with a 256-colour palette.
Needs the dev extra (Playwright) and the OS's Chromium (`make browser`).
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="report.html")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    parser.add_argument("--player", type=int, default=0, help="which player (0: the first)")
    parser.add_argument("--source", type=int, default=2,
                        help="which source button to press (0 mixture, 1 references, 2 the first method)")
    parser.add_argument("--solo", type=int, default=0, help="stem to solo (-1: none)")
    parser.add_argument("--at", type=float, default=0.4, help="position as a fraction of the track")
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--page", action="store_true", help="the whole page, not one player")
    args = parser.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    if chromium is None:
        sys.exit("no Chromium on PATH: make browser (or apt-get install chromium)")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=ARGS, headless=True,
            viewport={"width": args.width, "height": 900}, device_scale_factor=1)
        page = context.new_page()
        page.goto(args.report.resolve().as_uri())
        deadline = time.monotonic() + 30
        while not page.evaluate("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"):
            if time.monotonic() > deadline:
                sys.exit(f"{args.report}: some audio did not load within 30 s")
            time.sleep(0.1)
        player = page.locator("section.player").nth(args.player)
        player.locator(".source").nth(args.source).click()
        if args.solo >= 0:
            player.locator(f".panel:not([hidden]) .solo[data-stem='{args.solo}']").click()
        duration = float(player.get_attribute("data-duration"))
        player.locator(".seek").evaluate(
            "(bar, t) => { bar.value = String(t); bar.dispatchEvent(new Event('input')); }", args.at * duration)
        shot = page.screenshot(full_page=True) if args.page else player.screenshot()
        context.close()
    # 256 colours look the same here and make the README's PNG a third of the size
    image = Image.open(io.BytesIO(shot)).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    image.save(args.png, optimize=True)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
