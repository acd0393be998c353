"""One chain for both apply routes: same output, same sidecar, the prior carried through every step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import DATA, GO, copy_examples, invoke, sidecar_json

from sermm.chain import Chain
from sermm.cli.calibrate import main as calibrate
from sermm.cli.fuse import main as fuse
from sermm.estimator import load
from sermm.modelfile import load_model
from sermm.sidecar import read_sidecar
from sermm.tables import read_posteriors

V1 = DATA / "v1"
CLASSES = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]


def ok(cli, *args) -> str:
    result = invoke(cli, *args)
    assert result.exit_code == 0, result.output
    return result.output


def raw_sidecar(path: Path) -> dict:
    doc = sidecar_json(path)
    doc.pop("created")
    return doc


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """The issue's session: logreg fusion on dev, a uniform prior model from its dev output."""
    names = [f"{s}_{split}.csv" for split in ("dev", "test") for s in ("words", "chars", "labels")]
    work = copy_examples(tmp_path_factory.mktemp("chain"), names)
    ok(fuse, "logreg", "--inputs", work / "words_dev.csv", work / "chars_dev.csv", "--labels",
       work / "labels_dev.csv", "--save", work / "m.json", "--output", work / "fdev.csv")
    ok(calibrate, "prior", "--uniform", "--input", work / "fdev.csv", "--save", work / "u.json")
    ok(calibrate, "thresholds", "--input", work / "fdev.csv", "--labels", work / "labels_dev.csv",
       "--save", work / "thr.json")
    return work


def inputs(work: Path) -> list[Path]:
    return [work / "words_test.csv", work / "chars_test.csv"]


def test_both_apply_routes_write_the_same_bytes_and_sidecar(fitted):
    work = fitted
    ok(fuse, "apply", work / "m.json", "--inputs", *inputs(work), "--then", work / "u.json",
       "--output", work / "route1.csv")
    ok(fuse, "apply", work / "m.json", "--inputs", *inputs(work), "--output", work / "ftest.csv")
    ok(calibrate, "apply", work / "u.json", "--input", work / "ftest.csv", "--output", work / "route2.csv")
    assert (work / "route1.csv").read_bytes() == (work / "route2.csv").read_bytes()
    first, second = raw_sidecar(work / "route1.csv"), raw_sidecar(work / "route2.csv")
    assert first == second
    assert first["system"] == "fusion-logreg+prior"
    assert first["models"] == ["m.json", "u.json"] and first["inputs"] == ["words_test.csv", "chars_test.csv"]


def test_the_prior_is_carried_through_then(fitted):
    """The issue's bug: after --then uniform.json, the sidecar had no train_prior, and a second
    uniform rebalancing fell back to the fusion model's dev-label prior."""
    work = fitted
    ok(fuse, "apply", work / "m.json", "--inputs", *inputs(work), "--then", work / "u.json",
       "--output", work / "ftest_u.csv")
    assert read_sidecar(work / "ftest_u.csv").train_prior == pytest.approx(dict.fromkeys(CLASSES, 1 / 7))
    out = ok(calibrate, "prior", "--uniform", "--input", work / "ftest_u.csv", "--output", work / "again.csv")
    assert "training prior (" in out and "ftest_u.csv.meta.json" in out
    before, after = read_posteriors(work / "ftest_u.csv"), read_posteriors(work / "again.csv")
    np.testing.assert_array_equal(after.values, before.values)
    # the fused file without calibration is under the dev label prior, which the model records
    ok(fuse, "apply", work / "m.json", "--inputs", *inputs(work), "--output", work / "plain.csv")
    prior = load_model(work / "m.json")["train_prior"]
    assert read_sidecar(work / "plain.csv").train_prior == pytest.approx(prior)


def test_decision_chains_agree_and_write_no_sidecar(fitted):
    work = fitted
    ok(fuse, "apply", work / "m.json", "--inputs", *inputs(work), "--then", work / "u.json",
       work / "thr.json", "--output", work / "d1.csv")
    ok(calibrate, "apply", work / "u.json", work / "thr.json", "--input", work / "ftest.csv",
       "--output", work / "d2.csv")
    assert (work / "d1.csv").read_bytes() == (work / "d2.csv").read_bytes()
    assert not Path(f"{work / 'd1.csv'}.meta.json").exists()


def test_a_chain_saved_as_one_model_file_applies_the_same(fitted):
    work = fitted
    ok(fuse, "apply", work / "m.json", "--inputs", *inputs(work), "--then", work / "u.json",
       "--output", work / "c1.csv", "--save-chain", work / "chain.json")
    ok(fuse, "apply", work / "chain.json", "--inputs", *inputs(work), "--output", work / "c2.csv")
    assert (work / "c1.csv").read_bytes() == (work / "c2.csv").read_bytes()
    assert read_sidecar(work / "c2.csv").models == [str(work / "chain.json")]
    assert read_sidecar(work / "c2.csv").train_prior == read_sidecar(work / "c1.csv").train_prior
    doc = load_model(work / "chain.json", "chain")
    assert [step["method"] for step in doc["steps"]] == ["logreg", "prior"]
    chain = Chain.load([work / "chain.json"])
    again = chain.to_dict()
    assert again == {k: doc[k] for k in again}  # a chain round trip is exact


def test_version_1_fusion_models_load_and_give_the_same_scores():
    for model, systems, head in (("logreg.json", ("words", "chars", "nb"), "logreg_test_head.csv"),
                                 ("interp.json", ("words", "chars"), "interp_test_head.csv")):
        chain = Chain.load([V1 / model], first="fusion")
        aligned = chain.read([str(GO / f"{s}_test.csv") for s in systems])
        out = chain.apply(aligned.tables)
        expected = read_posteriors(V1 / head)
        rows = out.table.take(np.arange(len(expected)))
        assert list(rows.ids) == list(expected.ids)
        np.testing.assert_array_equal(rows.values, expected.values)
    dev = load(V1 / "logreg.json").fit_info_["dev_metrics"]
    assert dev["fit"]["macro_f1"] == pytest.approx(0.5911, abs=1e-4)


@pytest.mark.parametrize("model", ["affine.json", "prior_uniform.json"])
def test_version_1_calibration_models_say_to_refit(tmp_path, model):
    result = CliRunner().invoke(calibrate, ["apply", str(V1 / model), "-i", str(GO / "words_test.csv"),
                                            "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "model file version 1" in lines[0] and "refit it" in lines[0]
    assert not (tmp_path / "out.csv").exists()


def test_a_chain_refuses_what_it_cannot_run(fitted):
    work = fitted
    result = CliRunner().invoke(fuse, ["apply", str(work / "u.json"), "--inputs", *map(str, inputs(work)),
                                       "--output", str(work / "x.csv")])
    assert result.exit_code == 1 and "a calibration model, expected a fusion model" in result.output
    result = CliRunner().invoke(calibrate, ["apply", str(work / "m.json"), "-i", str(work / "ftest.csv"),
                                            "-o", str(work / "x.csv")])
    assert result.exit_code == 1 and "a fusion model, expected a calibration model" in result.output
