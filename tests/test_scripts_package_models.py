"""scripts/package_models.py: the out-of-domain scores and the choice of default they feed."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import package_models  # noqa: E402

STEMS = ["vocals", "drums", "bass", "other"]


def _summary_csv(folder: Path, rows: dict[str, list[float]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "summary.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["model", "stem", "metric", "value"])
        for model, values in rows.items():
            for stem, value in zip(STEMS, values):
                out.writerow([model, stem, "gsdr", value])
    return folder


def test_out_of_domain_scores_are_recorded_and_weigh_in_the_choice_of_default(tmp_path):
    reg = {"models": {"musdb_only": {"stems": STEMS, "valid_gsdr_mean": 4.36},
                      "with_multitracks": {"stems": STEMS, "valid_gsdr_mean": 4.26}}}
    # valid alone picks the MUSDB-only model
    assert max(reg["models"], key=lambda n: package_models.selection_score(reg["models"][n])) == "musdb_only"
    ood = _summary_csv(tmp_path / "ood", {"musdb_only": [4.5, 0.3, 3.5, 1.5],
                                         "with_multitracks": [5.7, 3.0, 5.7, 1.1]})
    package_models._record_ood(reg, ood)
    assert reg["models"]["musdb_only"]["ood_gsdr_dbo"] == pytest.approx((0.3 + 3.5 + 1.5) / 3, abs=0.01)
    assert reg["models"]["with_multitracks"]["ood_gsdr"]["vocals"] == 5.7
    # (4.26 + 3.27) / 2 against (4.36 + 1.77) / 2
    assert package_models.selection_score(reg["models"]["with_multitracks"]) == pytest.approx(3.765, abs=0.01)
    assert max(reg["models"], key=lambda n: package_models.selection_score(reg["models"][n])) == "with_multitracks"


def test_a_model_missing_from_the_out_of_domain_run_is_named(tmp_path):
    reg = {"models": {"a": {"stems": STEMS}, "b": {"stems": STEMS}}}
    ood = _summary_csv(tmp_path / "ood", {"a": [1, 2, 3, 4]})
    with pytest.raises(SystemExit, match="no rows for 'b': evaluate it with --model b"):
        package_models._record_ood(reg, ood)
