"""The listening report in a real browser: headless Chromium from the OS, driven by Playwright.

A 2-model, 3-track report (models: two folders of estimates; one track and one model with
hostile names) is opened from file://. `make test` installs Chromium (the Makefile's
`browser` target); without it this file is skipped with a one-line reason.
"""
import shutil
import time

import pytest
from test_html_report import HOSTILE_MODEL, HOSTILE_TRACK, make_listening_corpus

from stemsplit.pipelines.evaluate import EvaluateRequest, evaluate

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# as root, in a container, offline: no sandbox, no GPU, nothing that phones home
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--mute-audio"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="no Chromium on PATH (make browser, or apt-get install chromium)")


@pytest.fixture(scope="module")
def report_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    data, folders = make_listening_corpus(root)
    evaluate(EvaluateRequest(data=data, split="valid", estimates=folders, metrics="fast", out=root / "eval",
                             workers=1, html=True, html_tracks=3))
    return (root / "eval" / "report.html").as_uri()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1100, "height": 900})
        yield context
        context.close()


@pytest.fixture
def page(browser, report_url):
    page = browser.new_page()
    page.problems = []
    page.on("console", lambda msg: msg.type in ("error", "warning") and page.problems.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: page.problems.append(f"pageerror: {exc}"))
    page.on("dialog", lambda dialog: (page.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda req: req.url.startswith("file://") or page.problems.append(f"request: {req.url}"))
    page.goto(report_url)
    yield page
    page.close()


def wait_for(page, js: str, timeout: float = 10.0):
    """Poll a JS expression until it is truthy; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(js)
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def times(page, player: int, source: str) -> list[float]:
    return page.evaluate(f"""[...document.querySelectorAll('section.player')[{player}].querySelectorAll('audio')]
        .filter(a => a.getAttribute('data-source') === '{source}').map(a => a.currentTime)""")


def test_every_audio_loads_and_every_picture_shows_without_errors(page):
    n_audio = page.evaluate("document.querySelectorAll('audio').length")
    assert n_audio == 3 * (1 + 2 + 2 * 2)  # per track: mixture, 2 references, 2 models x 2 stems
    loaded = wait_for(page, "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
    states = page.evaluate("[...document.querySelectorAll('audio')].map(a => [a.readyState, a.duration, a.error])")
    assert loaded, states
    assert all(abs(duration - 2.0) < 0.05 and error is None for _, duration, error in states)
    assert page.evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.problems == []


def test_hostile_names_show_as_text_and_never_run(page):
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('script').length") == 1
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    names = page.evaluate("[...document.querySelectorAll('h3.track-name')].map(h => h.textContent)")
    assert sorted(names) == sorted(["calm song", HOSTILE_TRACK, "busy song"])
    labels = page.evaluate("[...document.querySelectorAll('section.player')[0].querySelectorAll('.source')]"
                           ".map(b => b.firstChild.textContent.trim())")
    assert labels == ["mixture", "reference stems", "close", HOSTILE_MODEL]
    assert page.problems == []


def test_switching_source_keeps_the_position(page):
    wait_for(page, "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
    player = page.locator("section.player").first
    # paused: seek, then switch: the new source's stems wait at the same time
    page.evaluate("""(() => { const bar = document.querySelector('section.player .seek');
        bar.value = '1.3'; bar.dispatchEvent(new Event('input')); })()""")
    player.locator(".source[data-source=m1]").click()
    assert times(page, 0, "m1") == pytest.approx([1.3, 1.3], abs=0.01)
    assert player.locator(".clock").text_content().startswith("0:01.3 / 0:02.0")
    assert player.locator(".panel[data-source=m1]").is_visible()
    assert not player.locator(".panel[data-source=mix]").is_visible()
    # playing: switch mid-song; the new stems go on from where the old ones were
    player.locator(".source[data-source=mix]").click()
    page.evaluate("""(() => { const bar = document.querySelector('section.player .seek');
        bar.value = '0.2'; bar.dispatchEvent(new Event('input')); })()""")
    player.locator(".play").click()
    assert wait_for(page, "document.querySelector('section.player audio[data-source=mix]').currentTime > 0.6")
    before = times(page, 0, "mix")[0]
    player.locator(".source[data-source=m0]").click()
    after = times(page, 0, "m0")
    assert all(before - 0.02 <= t < before + 0.3 for t in after), (before, after)
    assert page.evaluate("""[...document.querySelector('section.player').querySelectorAll('audio')]
        .filter(a => !a.paused).map(a => a.getAttribute('data-source'))""") == ["m0", "m0"]
    assert wait_for(page, "document.querySelector('section.player audio[data-source=m0]').currentTime > "
                          f"{after[0] + 0.2}")  # and it keeps playing
    player.locator(".play").click()
    assert page.evaluate("[...document.querySelectorAll('audio')].every(a => a.paused)")
    assert page.problems == []


def test_solo_mute_and_click_to_play_from_a_picture(page):
    wait_for(page, "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
    player = page.locator("section.player").nth(1)
    player.locator(".source[data-source=ref]").click()
    muted = ("[...document.querySelectorAll('section.player')[1].querySelectorAll('audio[data-source=m1]')]"
             ".map(a => a.muted)")
    player.locator(".panel[data-source=ref] .mute[data-stem='1']").click()
    player.locator(".play").click()
    assert page.evaluate(muted) == [False, True]  # mute holds in every source
    player.locator(".panel[data-source=ref] .mute[data-stem='1']").click()
    player.locator(".panel[data-source=ref] .solo[data-stem='1']").click()
    assert page.evaluate(muted) == [True, False]
    player.locator(".play").click()
    # a click three quarters into m1's vocals picture plays m1, vocals solo, from 1.5 s
    player.locator(".source[data-source=m1]").click()
    picture = player.locator(".panel[data-source=m1] .row[data-stem='0'] img.spec")
    box = picture.bounding_box()
    picture.click(position={"x": box["width"] * 0.75, "y": box["height"] / 2})
    assert page.evaluate(muted) == [False, True]
    playing = page.evaluate("""[...document.querySelectorAll('section.player')[1].querySelectorAll('audio')]
        .filter(a => !a.paused).map(a => [a.getAttribute('data-source'), a.currentTime])""")
    assert [s for s, _ in playing] == ["m1", "m1"] and all(1.45 < t < 1.8 for _, t in playing), playing
    assert player.locator(".play").text_content() == "Pause"
    # starting another player pauses this one
    page.locator("section.player").nth(2).locator(".play").click()
    assert player.locator(".play").text_content() == "Play"
    assert page.problems == []
