"""The catalogue of public models: the shipped file loads, every key is checked, overrides merge,
and ``listing()`` gives --list-models its rows."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hub_server import catalogue, entry, url_source

from stemsplit.hub import listing
from stemsplit.hub.catalogue import (
    SHIPPED_FILE,
    HuggingFaceSource,
    UrlSource,
    find,
    load,
    lookup,
    names,
    parse,
    read,
)
from stemsplit.hub.errors import CatalogueError, UnknownModelError

DATA = b"weights"
REQUIRED = ("umxhq", "umxl", "htdemucs", "htdemucs_ft", "htdemucs_6s")


def good() -> dict:
    return catalogue(entry("tiny", [{"role": "weights", "sources": [url_source("https://e.org/w-1.bin", DATA)]}]))


@pytest.fixture(autouse=True)
def _no_override(monkeypatch):
    monkeypatch.delenv("STEMSPLIT_CATALOGUE", raising=False)


def test_the_shipped_catalogue_loads_with_the_public_models():
    entries = read(SHIPPED_FILE)
    assert set(REQUIRED) <= set(entries)
    for e in entries.values():
        assert e.licence.name and e.licence.url.startswith("https://")
        assert e.download_bytes > 1_000_000 and e.sample_rate == 44100
        for f in e.files:  # every download is verifiable: a sha256, a hash prefix, or the hub's sha256
            for s in f.sources:
                assert isinstance(s, HuggingFaceSource) or s.sha256 or s.sha256_prefix
    assert entries["umxl"].licence.name == "CC-BY-NC-SA-4.0"  # the weights are not MIT
    assert entries["umxhq"].licence.name == entries["htdemucs"].licence.name == "MIT"
    assert entries["htdemucs_6s"].stems == ("drums", "bass", "other", "vocals", "guitar", "piano")


def test_the_shipped_published_scores_are_the_publishers():
    entries = read(SHIPPED_FILE)
    umxl = entries["umxl"].published_score
    assert umxl.per_stem == {"vocals": 7.21, "drums": 7.15, "bass": 6.02, "other": 4.89}
    assert umxl.mean == pytest.approx(sum(umxl.per_stem.values()) / 4, abs=0.005)
    assert "open-unmix-pytorch" in umxl.url and "median" in umxl.metric
    assert entries["htdemucs_ft"].published_score.mean == 9.0 and "demucs" in entries["htdemucs_ft"].published_score.url
    assert entries["htdemucs_6s"].published_score is None


def test_open_unmix_files_carry_the_publishers_hash_prefix():
    umxhq = read(SHIPPED_FILE)["umxhq"]
    vocals = umxhq.file("vocals").sources[0]
    assert isinstance(vocals, UrlSource)
    assert vocals.url == "https://zenodo.org/records/3370489/files/vocals-b62c91ce.pth"
    assert vocals.sha256_prefix == "b62c91ce" and vocals.file_name == "vocals-b62c91ce.pth"


def test_demucs_prefers_the_hub_and_falls_back_to_the_legacy_file_and_embeds_its_bag():
    ft = read(SHIPPED_FILE)["htdemucs_ft"]
    bag = ft.file("bag")
    assert bag.is_inline and bag.inline_name == "htdemucs_ft.yaml"
    assert "f7e0c4bc" in bag.inline_text and "weights" in bag.inline_text
    hub, legacy = ft.file("f7e0c4bc").sources
    assert (hub.repo, hub.path, hub.revision) == ("adefossez/HTDemucs-ft", "f7e0c4bc.safetensors", "main")
    assert legacy.url.endswith("/hybrid_transformer/f7e0c4bc-ba3fe64a.th") and legacy.sha256_prefix == "ba3fe64a"
    assert ft.file("f7e0c4bc").local_names() == ["f7e0c4bc.safetensors", "f7e0c4bc-ba3fe64a.th"]


def test_a_good_catalogue_parses():
    e = parse(good())["tiny"]
    assert e.file("weights").sources[0].sha256 is not None and e.file("weights").local_names() == ["w-1.bin"]


@pytest.mark.parametrize("edit, complaint", [
    (lambda c: c.update(extra=1), "unknown key 'extra'"),
    (lambda c: c["models"][0].update(lisence={}), "unknown key 'lisence'"),
    (lambda c: c["models"][0]["licence"].update(spdx="MIT"), "unknown key 'spdx'"),
    (lambda c: c["models"][0]["files"][0]["sources"][0].update(md5="x"), "unknown key 'md5'"),
    (lambda c: c["models"][0].pop("stems"), "missing key 'stems'"),
    (lambda c: c["models"][0].update(sample_rate="44100"), "sample_rate: expected int"),
    (lambda c: c["models"][0].update(sample_rate=True), "sample_rate: expected int"),
    (lambda c: c["models"][0].update(name="Bad Name"), "not a usable model name"),
    (lambda c: c["models"].append(copy.deepcopy(c["models"][0])), "listed twice"),
    (lambda c: c["models"][0]["files"][0]["sources"][0].pop("sha256"), "needs sha256 or sha256_prefix"),
    (lambda c: c["models"][0]["files"][0]["sources"][0].update(sha256="abc"), "64 lowercase hex"),
    (lambda c: c["models"][0]["files"][0]["sources"][0].update(url="file:///etc/passwd"), r"http\(s\) URL"),
    (lambda c: c["models"][0]["files"][0]["sources"][0].update(file="../escape"), "unusable local file name"),
    (lambda c: c["models"][0]["files"][0]["sources"][0].update(kind="ftp"), "expected 'huggingface' or 'url'"),
    (lambda c: c.update(schema=2), "schema"),
])
def test_unknown_missing_and_mistyped_keys_are_refused(edit, complaint):
    bad = good()
    edit(bad)
    with pytest.raises(CatalogueError, match=complaint):
        parse(bad)


def test_a_hash_prefix_that_disagrees_with_the_file_name_is_refused():
    bad = catalogue(entry("tiny", [{"role": "w", "sources": [
        {"kind": "url", "url": "https://e.org/vocals-b62c91ce.pth", "sha256_prefix": "deadbeef"}]}]))
    with pytest.raises(CatalogueError, match="disagrees with the file name"):
        parse(bad)


def test_a_file_with_both_sources_and_inline_text_is_refused():
    bad = catalogue(entry("tiny", [{"role": "bag", "inline": {"name": "bag.yaml", "text": "models: []"},
                                    "sources": [url_source("https://e.org/b.yaml", DATA)]}]))
    with pytest.raises(CatalogueError, match="either 'sources' or 'inline'"):
        parse(bad)


def test_the_override_file_replaces_and_adds_entries(tmp_path, monkeypatch):
    mirror = read(SHIPPED_FILE)["umxhq"]
    override = good()
    override["models"].append(entry("umxhq", [{"role": "vocals", "sources": [
        url_source("https://mirror.example.org/umx/vocals-b62c91ce.pth", sha256_prefix="b62c91ce")]}]))
    path = tmp_path / "mirror.json"
    path.write_text(json.dumps(override))
    monkeypatch.setenv("STEMSPLIT_CATALOGUE", str(path))
    entries = load()
    assert "tiny" in entries and "htdemucs" in entries
    assert entries["umxhq"].file("vocals").sources[0].url.startswith("https://mirror.example.org/")
    assert entries["umxhq"] != mirror


def test_a_broken_override_is_one_line_naming_the_file(tmp_path, monkeypatch):
    path = tmp_path / "mirror.json"
    path.write_text("{not json")
    monkeypatch.setenv("STEMSPLIT_CATALOGUE", str(path))
    with pytest.raises(CatalogueError, match=f"{path} is not valid JSON") as err:
        load()
    assert "\n" not in str(err.value) and err.value.exit_code == 2


def test_names_and_find_answer_from_the_same_catalogue():
    assert names()[:len(REQUIRED)] == list(REQUIRED)
    assert find("htdemucs").title.startswith("Hybrid Transformer Demucs") and find("no/such/model.ckpt") is None


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError, match="unknown model 'htdemux'.*htdemucs_ft"):
        lookup("htdemux")


def test_listing_has_one_row_per_entry_with_licence_size_cache_state_and_published_score(tmp_path):
    rows = {r["name"]: r for r in listing(tmp_path)}
    assert set(REQUIRED) <= set(rows)
    umxl = rows["umxl"]
    assert umxl["licence"] == "CC-BY-NC-SA-4.0" and "non-commercial" in umxl["licence_note"]
    assert umxl["download_mb"] == pytest.approx(452.3) and umxl["cached"] is False
    assert umxl["published_score"].startswith("6.32 dB (published;") and "open-unmix" in umxl["score_source"]
    assert rows["htdemucs_6s"]["published_score"] == "none published"
    Path(tmp_path, "htdemucs").mkdir()
    Path(tmp_path, "htdemucs", "955717e8.safetensors").write_bytes(DATA)
    assert {r["name"]: r for r in listing(tmp_path)}["htdemucs"]["cached"] is True
