"""``sermm-fuse compare``: every recipe under one CV, the choice nested in the folds, the best saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import GO, assert_one_line_error, invoke

from sermm.align import load_aligned
from sermm.cli.fuse import main
from sermm.compare import Recipe, compare
from sermm.fusion.io import read_groups
from sermm.metrics import macro_f1
from sermm.modelfile import load_model
from sermm.tables import read_posteriors


def subset(folder: Path, split: str, every: int = 5) -> list[Path]:
    """Every ``every``-th row of the words and chars files of ``split`` (with their sidecars), and labels."""
    out = []
    for name in (f"words_{split}.csv", f"chars_{split}.csv", f"labels_{split}.csv"):
        frame = pd.read_csv(GO / name)
        frame.iloc[::every].to_csv(folder / name, index=False, float_format="%.9g")
        if (GO / f"{name}.meta.json").exists():
            shutil.copy(GO / f"{name}.meta.json", folder / f"{name}.meta.json")
        out.append(folder / name)
    return out


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    words, chars, labels = subset(folder, "dev")
    return folder, words, chars, labels


def test_the_same_seed_picks_the_same_recipe_and_the_nested_estimate_is_honest(dev):
    folder, words, chars, labels = dev
    aligned = load_aligned([words, chars], labels)
    groups = read_groups(str(GO / "groups_dev.csv"), aligned.ids)
    first = compare(aligned.tables, aligned.y(), groups=groups, n_boot=100, seed=3, cv=3, inner=2)
    again = compare(aligned.tables, aligned.y(), groups=groups, n_boot=100, seed=3, cv=3, inner=2)
    assert first.best == again.best and first.chosen_per_fold == again.chosen_per_fold
    assert first.table() == again.table()
    best = first.best_row().metrics["macro-f1"]
    nested = first.nested.metrics["macro-f1"]
    # the best row won a maximum over 12 recipes after seeing every fold; the nested choice did not
    assert nested <= best
    assert nested < best or all(r == first.best for r in first.chosen_per_fold)
    # every row is a real out-of-fold score: the mean needs no fitting, so its row is the mean's own
    mean_row = next(r for r in first.rows if r.recipe == Recipe("mean"))
    y = aligned.y()
    by_hand = macro_f1(y, (aligned.tables[0].values + aligned.tables[1].values).argmax(axis=1), n_classes=7)
    assert mean_row.metrics["macro-f1"] == pytest.approx(by_hand, abs=1e-12)
    low, high = mean_row.interval
    assert low < by_hand < high
    # decisions have no cross-entropy: thresholds change only decisions, a vote's rows are one-hot
    for row in first.rows:
        if row.recipe is not None and row.recipe.decides:
            assert np.isnan(row.metrics["ce"]), row.label
    assert any(row.recipe == Recipe("vote") for row in first.rows)
    table = first.table()
    assert "* " + first.best.name in table and "nested" in table and "optimistic" in table
    assert "honest" in table and "3-fold grouped CV" in table


def test_compare_cli_saves_a_chain_that_apply_runs(dev, tmp_path):
    folder, words, chars, labels = dev
    test_words, test_chars, test_labels = subset(tmp_path, "test")
    best, report = tmp_path / "best.json", tmp_path / "compare.md"
    result = invoke(main, "compare", "--inputs", words, chars, "--labels", labels, "--groups",
                    GO / "groups_dev.csv", "--n-boot", 100, "--cv", 3, "--inner-cv", 2, "--save", best,
                    "--report", report, "-q")
    assert result.exit_code == 0, result.output
    assert "refitted on all rows: " + str(best) in result.output and f"report: {report}" in result.output
    assert "| recipe |" in report.read_text()
    doc = load_model(best)
    assert doc["layer"] == "chain"
    out = tmp_path / "final.csv"
    applied = invoke(main, "apply", best, "--inputs", test_chars, test_words, "--output", out,
                     "--labels", test_labels)
    assert applied.exit_code == 0, applied.output
    if "thresholds" in doc["steps"][-1]["method"]:
        assert list(pd.read_csv(out).columns) == ["id", "label"]
    else:
        assert read_posteriors(out).values.shape[1] == 7


def test_compare_needs_labels_and_a_known_metric(dev):
    folder, words, chars, labels = dev
    result = invoke(main, "compare", "--inputs", words, chars)
    assert result.exit_code == 2 and "--labels" in result.output
    assert_one_line_error(invoke(main, "compare", "--inputs", words, chars, "--labels", labels,
                                 "--cv", 50), "a class has only")
