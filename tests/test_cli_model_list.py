"""`stemsplit separate --list-models`: shipped and public models, from the resolver."""
from __future__ import annotations

from typer.testing import CliRunner

from stemsplit.cli import app
from stemsplit.hub import catalogue


def _groups(output: str) -> tuple[list[list[str]], list[list[str]]]:
    rows = [line.split("\t") for line in output.splitlines()]
    second = next(i for i, row in enumerate(rows) if i and row[0] == "name")
    return rows[:second], rows[second:]


def test_public_models_show_licence_size_cache_state_and_a_published_score(tmp_path, monkeypatch):
    monkeypatch.setenv("STEMSPLIT_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["separate", "--list-models"])
    assert res.exit_code == 0, res.output
    shipped, public = _groups(res.output)
    assert shipped[0][:2] == ["name", "architecture"] and "speed (x real time, build machine)" in shipped[0]
    assert public[0] == ["name", "model", "licence", "download", "cached", "stems", "score (dB, published)", "source"]
    names = [row[0] for row in public[1:]]
    assert names == catalogue.names()
    row = dict(zip(public[0], public[names.index("umxl") + 1]))
    assert row["licence"] == "CC-BY-NC-SA-4.0" and row["cached"] == "no" and row["download"].endswith(" MB")
    assert row["score (dB, published)"].startswith("mean 6.32") and "README" in row["source"]


def test_a_model_in_the_cache_is_listed_as_cached(tmp_path, monkeypatch):
    from stemsplit.hub import cache

    monkeypatch.setenv("STEMSPLIT_CACHE", str(tmp_path))
    entry = catalogue.find("htdemucs_6s")
    folder = cache.model_dir(entry)
    folder.mkdir(parents=True)
    for f in entry.files:  # every downloaded file in place under its cache name
        if not f.is_inline:
            (folder / f.local_names()[0]).write_bytes(b"weights")
    res = CliRunner().invoke(app, ["separate", "--list-models"])
    _, public = _groups(res.output)
    cached = {row[0]: row[4] for row in public[1:]}
    assert cached["htdemucs_6s"] == "yes" and cached["htdemucs"] == "no"
