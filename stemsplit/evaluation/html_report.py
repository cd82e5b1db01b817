"""``report.html``: the listening report as one self-contained page.

The player's JavaScript and CSS (``html_assets/``) are inlined, so the page needs no server
and no network; a Content-Security-Policy forbids any other script, style or connection.
Every name that comes from the user's data (tracks, methods, stems) is HTML-escaped here, and
the script reads them only as text, so a track called ``<script>`` shows as text.
"""
from __future__ import annotations

import html
import math
import secrets
from importlib import resources

from stemsplit.evaluation.listening_page import ListeningPage, SourceSet, TrackPlayer
from stemsplit.evaluation.methods import ORACLE
from stemsplit.metrics import GSDR, MEAN_STEM

METRIC_TITLES = {"SDR": "SDR (BSS Eval v4, median over 1-s frames)", GSDR: "global SDR (gSDR, MDX)"}
SHORT = {"SDR": "SDR", GSDR: "gSDR"}


def esc(value) -> str:
    """Text or attribute value, escaped for HTML (quotes too)."""
    return html.escape(str(value), quote=True)


def _asset(name: str) -> str:
    return (resources.files("stemsplit.evaluation") / "html_assets" / name).read_text(encoding="utf-8")


def _db(value: float, digits: int = 2) -> str:
    return "&ndash;" if value is None or not math.isfinite(value) else f"{value:.{digits}f}".replace("-", "&minus;")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{rest:04.1f}"


# --- summary ------------------------------------------------------------------------------------


def _metric_table(page: ListeningPage, metric: str) -> str:
    report = page.report
    cols = [*report.stems, MEAN_STEM]
    models = report.scored_models()
    kinds = {s.name: s.kind for s in report.methods}
    best = {c: max((report.value(m, c, metric) for m in models
                    if kinds[m] != ORACLE and math.isfinite(report.value(m, c, metric))), default=math.nan)
            for c in cols}
    head = "".join(f"<th>{esc(c)}</th>" for c in cols)
    rows = []
    for model in models:
        cells = []
        for c in cols:
            v = report.value(model, c, metric)
            strong = kinds[model] != ORACLE and math.isfinite(v) and v == best[c]
            cells.append(("<td class=\"best\">" if strong else "<td>") + f"{_db(v)}</td>")
        rows.append(f"<tr class=\"{esc(kinds[model])}\"><th scope=\"row\">{esc(model)}</th>{''.join(cells)}"
                    f"<td class=\"n\">{len(report.results[model])}</td></tr>")
    return (f"<table class=\"scores\"><caption>{esc(METRIC_TITLES.get(metric, metric))}, dB: median over "
            f"tracks</caption><thead><tr><th>method</th>{head}<th>tracks</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _methods_table(page: ListeningPage) -> str:
    report = page.report
    metrics = [m for m in ("SDR", GSDR) if m in report.metrics]
    head = "".join(f"<th>headroom closed ({SHORT[m]})</th>" for m in metrics)
    rows = []
    for spec in report.methods:
        if spec.kind == ORACLE:
            continue
        share = page.headroom.get(spec.name, {})
        cells = "".join(f"<td>{_pct(share.get(m))}</td>" for m in metrics)
        speed = page.speed.get(spec.name)
        speed_cell = f"{speed:.1f}&times; real time" if speed else "&ndash;"
        rows.append(f"<tr><th scope=\"row\">{esc(spec.name)}</th><td>{esc(spec.kind)}</td>{cells}"
                    f"<td>{speed_cell}</td></tr>")
    if not rows:
        return ""
    note = ("" if page.headroom else "<p class=\"note\">Headroom needs the oracle rows: run with "
            "<code>--oracle</code>.</p>")
    return (f"<table class=\"methods\"><caption>Methods</caption><thead><tr><th>method</th><th>kind</th>{head}"
            f"<th>separation speed</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
            "<p class=\"note\"><em>Headroom closed</em> = (method &minus; mixture) / (oracle-irm-mag &minus; "
            "mixture) on the stem mean: the share of the way from doing nothing to the best magnitude ratio "
            "mask. <em>Speed</em>: seconds of audio per second of separation, median over tracks, as measured "
            "while scoring (one CPU thread per worker process on CPU).</p>")


def _pct(value: float | None) -> str:
    return "&ndash;" if value is None or not math.isfinite(value) else f"{100 * value:.0f}&nbsp;%"


def _summary(page: ListeningPage) -> str:
    report = page.report
    parts = [_metric_table(page, m) for m in ("SDR", GSDR) if m in report.metrics]
    parts.append(_methods_table(page))
    if page.boxplot:
        parts.append(f"<figure><img class=\"boxplot\" src=\"{esc(page.boxplot)}\" alt=\"per-track score boxes "
                     f"per stem and method\"><figcaption>Per-track {esc(SHORT[page.metric])} of every method, "
                     "best median on top.</figcaption></figure>")
    if report.errors:
        items = "".join(f"<li>{esc(e)}</li>" for e in report.errors)
        parts.append(f"<section class=\"errors\"><h3>Errors</h3><ul>{items}</ul></section>")
    return "".join(parts)


# --- players ------------------------------------------------------------------------------------


def _scores_label(scores: dict[str, float], metric: str) -> str:
    order = [metric] + [m for m in ("SDR", GSDR) if m != metric]
    shown = [f"{SHORT[m]} {_db(scores[m])} dB" for m in order if m in scores]
    return f" <span class=\"score\">{' &middot; '.join(shown)}</span>" if shown else ""


def _panel(source: SourceSet, metric: str, hidden: bool) -> str:
    rows = []
    for k, clip in enumerate(source.clips):
        stem_attr = "" if source.kind == "mixture" else f" data-stem=\"{k}\""
        buttons = "" if source.kind == "mixture" else (
            f"<span class=\"buttons\"><button type=\"button\" class=\"solo\" data-stem=\"{k}\" aria-pressed=\"false\" "
            f"title=\"solo {esc(clip.label)}\">S</button><button type=\"button\" class=\"mute\" data-stem=\"{k}\" "
            f"aria-pressed=\"false\" title=\"mute {esc(clip.label)}\">M</button></span>")
        rows.append(
            f"<div class=\"row\"{stem_attr}><div class=\"label\"><span class=\"stem\">{esc(clip.label)}</span>"
            f"{_scores_label(clip.scores, metric)}{buttons}</div>"
            f"<div class=\"spec-wrap\"><img class=\"spec\" src=\"{esc(clip.image)}\" alt=\"spectrogram: "
            f"{esc(source.label)}, {esc(clip.label)}\" title=\"click to play from here\" draggable=\"false\">"
            f"<div class=\"playhead\"></div></div>"
            f"<audio preload=\"metadata\" src=\"{esc(clip.audio)}\" data-source=\"{esc(source.key)}\"{stem_attr}>"
            f"</audio></div>")
    return (f"<div class=\"panel\" data-source=\"{esc(source.key)}\"{' hidden' if hidden else ''}>"
            f"{''.join(rows)}</div>")


def _player(index: int, player: TrackPlayer, metric: str) -> str:
    buttons = []
    for n, source in enumerate(player.sources):
        mean = "" if not math.isfinite(source.mean) else f" <span class=\"score\">{_db(source.mean)} dB</span>"
        buttons.append(f"<button type=\"button\" class=\"source {esc(source.kind)}\" data-source=\"{esc(source.key)}\" "
                       f"aria-pressed=\"{'true' if n == 0 else 'false'}\">{esc(source.label)}{mean}</button>")
    panels = "".join(_panel(s, metric, hidden=n > 0) for n, s in enumerate(player.sources))
    notes = "".join(f"<p class=\"note\">{esc(n)}</p>" for n in player.notes)
    spread = (f"spread between methods {_db(player.spread)} dB {esc(SHORT[metric])} &middot; "
              if math.isfinite(player.spread) else "")
    return (f"<section class=\"player\" id=\"track-{index}\" data-duration=\"{player.duration:.3f}\">"
            f"<h3 class=\"track-name\">{esc(player.name)}</h3>"
            f"<p class=\"meta\">{spread}{_clock(player.duration)}</p>"
            f"<div class=\"transport\"><button type=\"button\" class=\"play\">Play</button>"
            f"<input type=\"range\" class=\"seek\" min=\"0\" max=\"{player.duration:.3f}\" step=\"0.01\" value=\"0\" "
            f"aria-label=\"position\"><span class=\"clock\">{_clock(0)} / {_clock(player.duration)}</span>"
            f"<span class=\"status\" role=\"status\"></span></div>"
            f"<div class=\"sources\" role=\"group\" aria-label=\"source\">{''.join(buttons)}</div>"
            f"{panels}{notes}</section>")


# --- the page -----------------------------------------------------------------------------------


def render_page(page: ListeningPage) -> str:
    report = page.report
    nonce = secrets.token_urlsafe(16)
    # nothing but our own inline script and style runs; no request leaves the page's folder
    csp = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
           "img-src 'self' file: data:; media-src 'self' file:; base-uri 'none'; form-action 'none'")
    players = "".join(_player(i, p, page.metric) for i, p in enumerate(page.players))
    index = "".join(f"<li><a href=\"#track-{i}\">{esc(p.name)}</a></li>" for i, p in enumerate(page.players))
    n_players = len(page.players)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stemsplit listening report: {esc(report.split)}</title>
<style nonce="{nonce}">{_asset("player.css")}</style>
</head>
<body>
<header><h1>Listening report</h1>
<p>Split <strong>{esc(report.split)}</strong>: {len(report.tracks)} track(s), {len(report.methods)} method(s).
Players for the {n_players} track(s) where the methods disagree most.</p></header>
<main>
<section id="summary"><h2>Summary</h2>{_summary(page)}</section>
<section id="players"><h2>Players</h2>
<p class="help">One player per track. <strong>Play</strong> and the bar move through the song; the buttons
above the pictures choose what you hear: the mixture, the reference stems, or one method's estimates,
without losing your place. <strong>S</strong> solos a stem and <strong>M</strong> mutes it, in every
source, so you can solo vocals and switch between a method and the reference. Click a spectrogram to
play that source from that time. Scores next to each estimate are its own on this track
({esc(SHORT[page.metric])} first). Audio: {esc(page.codec)}, {esc(page.bitrate)}b/s target.</p>
<figure class="scale"><img src="{esc(page.colour_scale)}" alt="colour scale of every spectrogram">
<figcaption>One colour scale for every spectrogram; frequency on a log axis.</figcaption></figure>
<nav><ol>{index}</ol></nav>
{players}
</section>
</main>
<script nonce="{nonce}">{_asset("player.js")}</script>
</body>
</html>
"""
