"""sermm-report: numbers against sklearn and hand computations, Markdown, JSON, PNGs, errors."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import assert_one_line_error
from sklearn import metrics as skm

from sermm.bootstrap import bootstrap_categorical, paired_bootstrap
from sermm.cli.report import main
from sermm.plots import write_report_plots
from sermm.report import build_report, load_report_data, render_markdown

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLASSES = ["anger", "joy", "sad"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def invoke(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def no_file(directory, name):
    """Neither the file nor a leftover temporary file of it exists."""
    return not any(p.name == name or p.name.startswith(f".{name}.") for p in directory.iterdir())


@pytest.fixture
def case(tmp_path):
    """12 utterances, 3 classes: a posterior file (rows shuffled, columns reordered), another
    posterior file, a decision file, and the labels."""
    rng = np.random.default_rng(3)
    n = 12
    ids = np.array([f"utt{i:02d}" for i in range(n)], dtype=object)
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2])
    pd.DataFrame({"id": ids, "label": np.array(CLASSES)[y]}).to_csv(tmp_path / "labels.csv", index=False)
    posteriors = {}
    for name, strength in (("good", 2.0), ("weak", 0.5)):
        logits = rng.normal(size=(n, 3))
        logits[np.arange(n), y] += strength
        P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        posteriors[name] = P
        frame = pd.DataFrame(P, columns=CLASSES)
        frame.insert(0, "id", ids)
        frame = frame[["id", "sad", "anger", "joy"]].iloc[rng.permutation(n)]
        frame.to_csv(tmp_path / f"{name}.csv", index=False, float_format="%.10f")
    decisions = np.array([0, 1, 0, 0, 1, 1, 2, 1, 0, 2, 2, 1])
    frame = pd.DataFrame({"id": ids, "label": np.array(CLASSES)[decisions]}).iloc[::-1]
    frame.to_csv(tmp_path / "vote.csv", index=False)
    return {"dir": tmp_path, "y": y, "P": posteriors, "decisions": decisions}


def paths(case, *names):
    return [str(case["dir"] / f"{n}.csv") for n in names]


def test_numbers_match_sklearn(case):
    data = load_report_data(paths(case, "good", "weak", "vote"), str(case["dir"] / "labels.csv"))
    report = build_report(data, n_boot=200, seed=1)
    cat = report["categorical"]
    y = case["y"]
    assert cat["classes"] == ["sad", "anger", "joy"]  # the first posterior file's column order
    order = [CLASSES.index(c) for c in cat["classes"]]
    y_new = np.argsort(order)[y]  # label indices in the report's class order
    assert cat["n"] == 12 and cat["support"] == np.bincount(y_new, minlength=3).tolist()
    preds = {
        "good": np.argsort(order)[case["P"]["good"].argmax(axis=1)],
        "weak": np.argsort(order)[case["P"]["weak"].argmax(axis=1)],
        "vote": np.argsort(order)[case["decisions"]],
    }
    labels = [0, 1, 2]
    for system in cat["systems"]:
        pred = preds[system["system"]]
        m = system["metrics"]
        assert m["macro_f1"]["value"] == pytest.approx(
            skm.f1_score(y_new, pred, average="macro", labels=labels, zero_division=0)
        )
        assert m["micro_f1"]["value"] == pytest.approx(skm.f1_score(y_new, pred, average="micro"))
        assert m["weighted_f1"]["value"] == pytest.approx(
            skm.f1_score(y_new, pred, average="weighted", zero_division=0)
        )
        assert m["ua"]["value"] == pytest.approx(skm.balanced_accuracy_score(y_new, pred))
        assert m["wa"]["value"] == pytest.approx(skm.accuracy_score(y_new, pred))
        # rows are in the label file's order whatever the inputs' order, so the resamples match
        boot = bootstrap_categorical(y_new, pred, n_classes=3, n_boot=200, seed=1)
        for name, (point, low, high) in boot.items():
            assert (m[name]["value"], m[name]["low"], m[name]["high"]) == pytest.approx((point, low, high))
            assert m[name]["low"] <= m[name]["value"] <= m[name]["high"]
        assert system["confusion"] == skm.confusion_matrix(y_new, pred, labels=labels).tolist()
        p, r, f, s = skm.precision_recall_fscore_support(y_new, pred, labels=labels, zero_division=0)
        for j, c in enumerate(cat["classes"]):
            got = system["per_class"][c]
            assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
                (p[j], r[j], f[j], s[j])
            )
        if system["system"] == "vote":
            assert system["kind"] == "decision" and system["calibration"] is None
            continue
        assert system["kind"] == "posterior"
        P = case["P"][system["system"]][:, order]
        cal = system["calibration"]
        ce = skm.log_loss(y_new, P, labels=labels)
        prior = np.bincount(y_new, minlength=3) / 12
        assert cal["cross_entropy"] == pytest.approx(ce, rel=1e-6)
        assert cal["nce"] == pytest.approx(ce / -np.sum(prior * np.log(prior)), rel=1e-6)
        assert cal["nce_uniform"] == pytest.approx(ce / np.log(3), rel=1e-6)
        onehot = np.eye(3)[y_new]
        assert cal["brier"] == pytest.approx(np.mean(np.sum((P - onehot) ** 2, axis=1)), rel=1e-6)
        assert cal["expected_cost"] == pytest.approx(1 - skm.accuracy_score(y_new, pred))
        # top-label ECE by hand with 15 equal-width bins (b-1)/15 < c <= b/15
        conf = P.max(axis=1)
        bins = np.ceil(conf * 15).astype(int)
        gaps = [abs(np.sum((pred == y_new)[bins == b] - conf[bins == b])) for b in np.unique(bins)]
        assert cal["ece"] == pytest.approx(sum(gaps) / 12, rel=1e-6)
    json.dumps(report, allow_nan=False)


def test_paired_comparison_against_best_other(case):
    data = load_report_data(paths(case, "weak", "good", "vote"), str(case["dir"] / "labels.csv"))
    report = build_report(data, n_boot=100, seed=0)
    cat = report["categorical"]
    f1 = {s["system"]: s["metrics"]["macro_f1"]["value"] for s in cat["systems"]}
    ranked = sorted(f1, key=f1.get, reverse=True)
    rows = {r["system"]: r for r in cat["comparison"]["rows"]}
    assert set(rows) == set(f1)
    for name, row in rows.items():
        best_other = max((s for s in f1 if s != name), key=f1.get)
        assert row["reference"] == best_other
        assert row["diff"] == pytest.approx(f1[name] - f1[best_other])
    assert rows[ranked[0]]["reference"] == ranked[1]
    # the numbers are those of sermm.bootstrap.paired_bootstrap on the aligned data
    index = {n: i for i, n in enumerate(data.categorical.names)}
    row = rows["weak"]
    expected = paired_bootstrap(
        data.categorical.y,
        data.categorical.pred[index[row["reference"]]],
        data.categorical.pred[index["weak"]],
        n_classes=3,
        n_boot=100,
        seed=0,
    )
    assert {k: row[k] for k in expected} == pytest.approx(expected)
    markdown = render_markdown(report)
    assert "### Paired comparison (macro-F1)" in markdown
    assert "best of the other systems" in markdown


def test_single_input_has_no_comparison(case):
    report = build_report(
        load_report_data(paths(case, "good"), str(case["dir"] / "labels.csv")), n_boot=20
    )
    assert report["categorical"]["comparison"]["rows"] == []
    assert "Paired comparison" not in render_markdown(report)


def test_cli_writes_json_markdown_and_pngs(case):
    d = case["dir"]
    result = invoke(
        ["--input", *paths(case, "good", "weak", "vote"), "--labels", d / "labels.csv",
         "--json", d / "r.json", "--markdown", d / "r.md", "--plots", d / "plots", "--n-boot", 50]
    )
    assert result.exit_code == 0, result.output
    assert (d / "r.md").read_text() == result.stdout
    report = json.loads((d / "r.json").read_text())
    assert [s["system"] for s in report["categorical"]["systems"]] == ["good", "weak", "vote"]
    assert report["bootstrap"] == {"n_boot": 50, "seed": 0, "confidence": 0.95}
    lines = result.stdout.splitlines()
    for name in ("good", "weak", "vote"):
        assert sum(line.startswith(f"| {name} | `") for line in lines) == 1
    vote_row = next(line for line in lines if line.startswith("| vote | `"))
    assert vote_row.rstrip(" |").endswith("– | – | – | –")
    assert "| class | support | good | weak | vote |" in result.stdout
    pngs = sorted(p.name for p in (d / "plots").iterdir())
    assert pngs == [
        "confusion_good.png",
        "confusion_vote.png",
        "confusion_weak.png",
        "reliability_good.png",
        "reliability_weak.png",
    ]
    for name in pngs:
        content = (d / "plots" / name).read_bytes()
        assert content[:8] == PNG_MAGIC and len(content) > 1024


def test_decision_files_alone(case):
    d = case["dir"]
    result = invoke(["--input", d / "vote.csv", "--labels", d / "labels.csv", "--n-boot", 20])
    assert result.exit_code == 0, result.output
    expected = skm.f1_score(case["y"], case["decisions"], average="macro")
    assert f"| vote | `{d / 'vote.csv'}` | {expected:.4f} [" in result.stdout


def test_classes_option_drops_other_labels(case):
    d = case["dir"]
    data = load_report_data(paths(case, "good"), str(d / "labels.csv"), classes="anger,joy")
    keep = case["y"] < 2
    y = case["y"][keep]
    P = case["P"]["good"][keep][:, :2]
    P = P / P.sum(axis=1, keepdims=True)
    report = build_report(data, n_boot=20)
    system = report["categorical"]["systems"][0]
    assert report["categorical"]["classes"] == ["anger", "joy"]
    assert system["metrics"]["macro_f1"]["value"] == pytest.approx(
        skm.f1_score(y, P.argmax(axis=1), average="macro")
    )
    assert system["calibration"]["cross_entropy"] == pytest.approx(skm.log_loss(y, P), rel=1e-6)


def test_on_missing_drop(case):
    d = case["dir"]
    frame = pd.read_csv(d / "good.csv", dtype={"id": str})
    frame.iloc[2:].to_csv(d / "short.csv", index=False, float_format="%.10f")
    args = ["--input", d / "short.csv", d / "weak.csv", "--labels", d / "labels.csv", "--n-boot", 20]
    assert_one_line_error(invoke(args), "2 id(s) of", "are missing from", "--on-missing drop")
    result = invoke([*args, "--on-missing", "drop", "--json", d / "r.json"])
    assert result.exit_code == 0, result.output
    assert json.loads((d / "r.json").read_text())["categorical"]["n"] == 10


def hand_ccc(t, p):
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    return 2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)


@pytest.fixture
def attribute_case(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    ids = [f"s{i}" for i in range(n)]
    truth = rng.uniform(1, 5, size=(n, 3))
    labels = pd.DataFrame(truth, columns=["arousal", "valence", "dominance"])
    labels.insert(0, "id", ids)
    labels.insert(1, "label", rng.choice(CLASSES, size=n))
    labels.to_csv(tmp_path / "labels.csv", index=False)
    preds = {}
    for name, noise in (("close", 0.3), ("far", 1.5)):
        pred = truth + noise * rng.normal(size=(n, 3)) + 0.2
        preds[name] = pred
        frame = pd.DataFrame(pred[:, ::-1], columns=["dominance", "valence", "arousal"])
        frame.insert(0, "id", ids)
        frame.iloc[::-1].to_csv(tmp_path / f"{name}.csv", index=False, float_format="%.12f")
    posterior = pd.DataFrame(rng.dirichlet(np.ones(3), size=n), columns=CLASSES)
    posterior.insert(0, "id", ids)
    posterior.to_csv(tmp_path / "post.csv", index=False, float_format="%.12f")
    return {"dir": tmp_path, "truth": truth, "pred": preds}


def test_attribute_ccc_matches_hand_computation(attribute_case):
    d = attribute_case["dir"]
    result = invoke(
        ["--input", d / "far.csv", d / "close.csv", "--labels", d / "labels.csv", "--n-boot", 100,
         "--json", d / "r.json", "--plots", d / "plots"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((d / "r.json").read_text())
    assert report["categorical"] is None
    att = report["attributes"]
    assert att["attributes"] == ["arousal", "valence", "dominance"]
    truth = attribute_case["truth"]
    means = {}
    for system in att["systems"]:
        pred = attribute_case["pred"][system["system"]]
        expected = [hand_ccc(truth[:, j], pred[:, j]) for j in range(3)]
        got = [system["ccc"][a]["value"] for a in att["attributes"]]
        assert got == pytest.approx(expected, rel=1e-9)
        for a in att["attributes"]:
            assert system["ccc"][a]["low"] <= system["ccc"][a]["value"] <= system["ccc"][a]["high"]
        assert system["mean_ccc"]["value"] == pytest.approx(np.mean(expected), rel=1e-9)
        assert system["mean_ccc"]["low"] <= system["mean_ccc"]["value"] <= system["mean_ccc"]["high"]
        means[system["system"]] = np.mean(expected)
    rows = {r["system"]: r for r in att["comparison"]["rows"]}
    assert rows["close"]["reference"] == "far" and rows["far"]["reference"] == "close"
    assert rows["close"]["diff"] == pytest.approx(means["close"] - means["far"])
    assert rows["close"]["p_value"] < 0.05 and rows["close"]["low"] > 0
    assert set(rows["close"]["per_attribute"]) == {"arousal", "valence", "dominance"}
    for line in ("| far | `", "| close | `"):
        assert sum(row.startswith(line) for row in result.stdout.splitlines()) == 1
    assert "### Paired comparison (mean CCC)" in result.stdout
    for name in ("attributes_close.png", "attributes_far.png"):
        content = (d / "plots" / name).read_bytes()
        assert content[:8] == PNG_MAGIC and len(content) > 1024


def test_categorical_and_attribute_inputs_in_one_report(attribute_case, tmp_path):
    d = attribute_case["dir"]
    data = load_report_data([str(d / "post.csv"), str(d / "close.csv")], str(d / "labels.csv"))
    report = build_report(data, n_boot=20)
    assert [s["system"] for s in report["categorical"]["systems"]] == ["post"]
    assert [s["system"] for s in report["attributes"]["systems"]] == ["close"]
    written = write_report_plots(data, tmp_path / "figs")
    assert sorted(p.name for p in written) == [
        "attributes_close.png",
        "confusion_post.png",
        "reliability_post.png",
    ]
    markdown = render_markdown(report)
    assert "## Categorical emotions" in markdown and "## Emotional attributes (CCC)" in markdown


def replace_in(path, old, new):
    path.write_text(path.read_text().replace(old, new))


def bad_labels_class(d):
    replace_in(d / "labels.csv", "utt03,anger", "utt03,fury")
    return ["--input", d / "good.csv", "--labels", d / "labels.csv"]


def bad_decision_class(d):
    replace_in(d / "vote.csv", "utt05,joy", "utt05,glee")
    return ["--input", d / "good.csv", d / "vote.csv", "--labels", d / "labels.csv"]


def embedding_input(d):
    (d / "emb.csv").write_text("id,e0,e1\nutt00,0.1,0.2\n")
    return ["--input", d / "good.csv", d / "emb.csv", "--labels", d / "labels.csv"]


ERRORS = {
    "missing-labels": (
        lambda d: ["--input", d / "good.csv", "--labels", d / "nope.csv"],
        ["nope.csv: no such file"],
    ),
    "unknown-label-class": (bad_labels_class, ["labels.csv: id 'utt03': unknown class 'fury'"]),
    "unknown-decision-class": (
        bad_decision_class,
        ["vote.csv: id 'utt05': decision 'glee' is not one of the classes"],
    ),
    "embedding-input": (embedding_input, ["emb.csv: is an embedding file"]),
    "bad-classes": (
        lambda d: ["--input", d / "good.csv", "--labels", d / "labels.csv", "--classes", "anger,calm"],
        ["--classes names calm, not a column"],
    ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_errors_are_one_line_and_write_nothing(case, name):
    setup, fragments = ERRORS[name]
    d = case["dir"]
    result = invoke([*setup(d), "--json", d / "r.json", "--markdown", d / "r.md", "--plots", d / "plots"])
    assert_one_line_error(result, *fragments)
    assert no_file(d, "r.json") and no_file(d, "r.md") and not (d / "plots").exists()


def test_attribute_labels_missing(attribute_case):
    d = attribute_case["dir"]
    (d / "cat_labels.csv").write_text("id,label\ns0,joy\n")
    result = invoke(["--input", d / "close.csv", "--labels", d / "cat_labels.csv", "--json", d / "r.json"])
    assert_one_line_error(result, "cat_labels.csv: no reference values for arousal")
    assert no_file(d, "r.json")


def test_shipped_examples(tmp_path):
    ge = EXAMPLES / "goemotions"
    result = invoke(
        ["--input", ge / "words_dev.csv", ge / "chars_dev.csv", ge / "nb_dev.csv",
         "--labels", ge / "labels_dev.csv", "--n-boot", 200, "--json", tmp_path / "ge.json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ge.json").read_text())
    cat = report["categorical"]
    assert cat["classes"] == ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
    truth = pd.read_csv(ge / "labels_dev.csv", dtype={"id": str}).set_index("id")["label"]
    for system in cat["systems"]:
        scores = pd.read_csv(system["file"], dtype={"id": str}).set_index("id").loc[truth.index]
        pred = scores[cat["classes"]].to_numpy().argmax(axis=1)
        y = pd.Categorical(truth, categories=cat["classes"]).codes
        assert system["metrics"]["macro_f1"]["value"] == pytest.approx(
            skm.f1_score(y, pred, average="macro")
        )
    assert len(cat["comparison"]["rows"]) == 3
    for name in ("words", "chars", "nb"):
        assert sum(line.startswith(f"| {name} | `") for line in result.stdout.splitlines()) == 1

    eb = EXAMPLES / "emobank"
    result = invoke(
        ["--input", eb / "ridge_words_dev.csv", eb / "ridge_chars_dev.csv",
         "--labels", eb / "labels_dev.csv", "--n-boot", 200, "--json", tmp_path / "eb.json"]
    )
    assert result.exit_code == 0, result.output
    att = json.loads((tmp_path / "eb.json").read_text())["attributes"]
    truth = pd.read_csv(eb / "labels_dev.csv", dtype={"id": str}).set_index("id")
    for system in att["systems"]:
        pred = pd.read_csv(system["file"], dtype={"id": str}).set_index("id").loc[truth.index]
        for a in att["attributes"]:
            expected = hand_ccc(truth[a].to_numpy(), pred[a].to_numpy())
            assert system["ccc"][a]["value"] == pytest.approx(expected)
    assert len(att["comparison"]["rows"]) == 2
