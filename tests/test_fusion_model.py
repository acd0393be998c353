"""Model files (JSON round trip, bit-identical output), the scikit-learn protocol, and cross-validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sermm.errors import SermmError
from sermm.estimator import estimator_from_dict, registered
from sermm.fusion.cv import cross_val_fuse, make_folds
from sermm.fusion.interp import InterpFuser, MeanFuser
from sermm.fusion.lda_plda import LDAFuser, PLDAFuser
from sermm.fusion.logreg import LogRegFuser
from sermm.fusion.vote import VoteFuser
from sermm.modelfile import load_model, save_model
from sermm.tables import ScoreTable


def posterior_tables(seed: int, n: int = 300, k: int = 3, m: int = 3) -> tuple[list[ScoreTable], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    ids = np.array([f"u{i:04d}" for i in range(n)], dtype=object)
    classes = ["ang", "hap", "neu"][:k]
    tables = []
    for j in range(m):
        logits = (0.8 + 0.4 * j) * np.eye(k)[y] + rng.standard_normal((n, k))
        P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        tables.append(ScoreTable(ids, P, classes, "posterior", {"system": f"s{j}"}, f"s{j}.csv"))
    return tables, y


def embedding_tables(seed: int, n: int = 300) -> tuple[list[ScoreTable], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    ids = np.array([f"u{i:04d}" for i in range(n)], dtype=object)
    centres = rng.standard_normal((3, 8)) * 2
    X = centres[y] + rng.standard_normal((n, 8))
    tables = [
        ScoreTable(ids, X[:, :5], [f"e{i}" for i in range(5)], "embedding", {}, "a.emb.parquet"),
        ScoreTable(ids, X[:, 5:], [f"e{i}" for i in range(3)], "embedding", {}, "b.emb.parquet"),
    ]
    return tables, np.array(["ang", "hap", "neu"], dtype=object)[y]


FUSERS = [
    ("mean", lambda: MeanFuser(), "posterior"),
    ("interp", lambda: InterpFuser(), "posterior"),
    ("interp-log", lambda: InterpFuser(domain="log", step=0.1), "posterior"),
    ("logreg", lambda: LogRegFuser(), "posterior"),
    ("logreg-tied", lambda: LogRegFuser(tied=True, class_weight="balanced"), "posterior"),
    ("vote", lambda: VoteFuser(), "posterior"),
    ("lda", lambda: LDAFuser(lda_dim=4), "embedding"),
    ("plda", lambda: PLDAFuser(lda_dim=6, norm="length"), "embedding"),
    ("interp-attributes", lambda: InterpFuser(), "attribute"),
    ("mean-attributes", lambda: MeanFuser(), "attribute"),
]


def data_for(kind: str, seed: int = 0) -> tuple[list[ScoreTable], np.ndarray]:
    if kind == "embedding":
        return embedding_tables(seed)
    if kind == "attribute":
        rng = np.random.default_rng(seed)
        truth = rng.standard_normal((200, 3))
        ids = np.array([f"u{i}" for i in range(200)], dtype=object)
        tables = [
            ScoreTable(
                ids,
                truth + s * rng.standard_normal((200, 3)),
                ["arousal", "valence", "dominance"],
                "attribute",
                {},
                f"r{s}.csv",
            )
            for s in (0.5, 1.0)
        ]
        return tables, truth
    return posterior_tables(seed)


@pytest.mark.parametrize(("name", "make", "kind"), FUSERS, ids=[f[0] for f in FUSERS])
def test_json_round_trip_is_bit_identical(tmp_path, name, make, kind):
    tables, y = data_for(kind)
    fuser = make().fit(tables, y)
    fuser.fit_info_["dev_metrics"] = {"fit": {"macro_f1": 0.5}}
    path = tmp_path / "model.json"
    save_model(path, fuser.to_dict())
    doc = load_model(path, "fusion")
    loaded = estimator_from_dict(doc, source=str(path))
    assert type(loaded) is type(fuser)
    assert loaded.get_params() == fuser.get_params()
    assert loaded.systems_ == fuser.systems_ and loaded.columns_ == fuser.columns_
    assert doc["fit"]["dev_metrics"] == {"fit": {"macro_f1": 0.5}}
    assert loaded.to_dict() == fuser.to_dict()
    new_tables, _ = data_for(kind, seed=1)
    if kind == "embedding":
        new_tables = tables
    assert np.array_equal(loaded.transform(new_tables), fuser.transform(new_tables))
    assert loaded.describe() == fuser.describe()


def test_model_documents_name_what_apply_needs():
    tables, y = posterior_tables(0)
    doc = LogRegFuser().fit(tables, y).to_dict()
    assert doc["method"] == "logreg" and doc["classes"] == ["ang", "hap", "neu"]
    assert doc["values"] == "probability" and doc["layer"] == "fusion"
    assert doc["inputs"] == {"kind": "posterior", "systems": ["s0", "s1", "s2"], "widths": [3, 3, 3],
                             "by_name": True, "class_subset": False}
    assert doc["params"] == {
        "C": 1.0, "class_weight": None, "max_iter": 1000, "tied": False, "warm_start": False
    }
    assert doc["train_prior"] == pytest.approx(
        dict(zip(["ang", "hap", "neu"], np.bincount(y) / len(y), strict=True))
    )
    assert np.array(doc["state"]["coef"]).shape == (3, 9)


def test_unknown_method_and_malformed_state():
    with pytest.raises(SermmError, match="unknown fusion method 'magic'"):
        estimator_from_dict({"method": "magic"}, source="m.json", layer="fusion")
    tables, y = posterior_tables(0)
    doc = InterpFuser().fit(tables, y).to_dict()
    del doc["state"]["weights"]
    with pytest.raises(SermmError, match="m.json: malformed interp fusion model"):
        estimator_from_dict(doc, source="m.json")
    assert set(registered("fusion")) == {"mean", "interp", "logreg", "vote", "lda", "plda"}


def test_fusers_follow_the_sklearn_protocol():
    fuser = LogRegFuser(C=0.5, tied=True)
    assert fuser.get_params() == {
        "C": 0.5, "class_weight": None, "max_iter": 1000, "tied": True, "warm_start": False
    }
    copy = clone(fuser)
    assert copy is not fuser and copy.get_params() == fuser.get_params()
    assert repr(fuser) == "LogRegFuser(C=0.5, tied=True)"
    assert fuser.set_params(C=2.0) is fuser and fuser.C == 2.0
    with pytest.raises(ValueError, match="invalid parameter"):
        fuser.set_params(gamma=1)
    assert MeanFuser().get_params() == {}


def test_grid_search_over_a_fuser():
    tables, y = posterior_tables(2, n=240)
    X = np.stack([t.values for t in tables], axis=1)  # (n, systems, classes): sliceable by sklearn
    search = GridSearchCV(
        LogRegFuser(tied=True), {"C": [0.01, 1.0]}, cv=StratifiedKFold(3, shuffle=True, random_state=0)
    )
    search.fit(X, y)
    assert search.best_params_["C"] in (0.01, 1.0)
    assert search.best_estimator_.predict_proba(X).shape == (240, 3)
    interp = GridSearchCV(InterpFuser(), {"step": [0.5, 0.1]}, cv=3).fit(X, y)
    assert 0 <= interp.best_score_ <= 1


def test_cross_validation_scores_each_fold_with_an_unseen_model():
    tables, y = posterior_tables(3)
    folds = make_folds(y, n_splits=4, seed=0)
    assert sorted(np.concatenate([test for _, test in folds]).tolist()) == list(range(len(y)))
    for train, test in folds:
        assert not set(train) & set(test)
        assert np.allclose(np.bincount(y[test]) / len(test), np.bincount(y) / len(y), atol=0.05)
    oof = cross_val_fuse(LogRegFuser(), tables, y, folds)
    for train, test in folds[:1]:
        direct = LogRegFuser().fit([t.take(train) for t in tables], y[train])
        assert np.allclose(oof[test], direct.transform([t.take(test) for t in tables]))
    groups = np.arange(len(y)) % 7
    for train, test in make_folds(y, n_splits=3, groups=groups):
        assert not set(groups[train]) & set(groups[test])
    with pytest.raises(SermmError, match="only 7 groups"):
        make_folds(y, n_splits=8, groups=groups)


def test_misaligned_or_mismatched_inputs_are_refused():
    tables, y = posterior_tables(4)
    shuffled = tables[1].take(np.arange(len(y))[::-1])
    with pytest.raises(SermmError, match="not aligned"):
        MeanFuser().fit([tables[0], shuffled])
    fuser = InterpFuser().fit(tables, y)
    with pytest.raises(SermmError, match="fitted on 3 systems"):
        fuser.transform(tables[:2])
    other = [t.with_columns(["neu", "hap", "ang"]) for t in tables]
    assert np.allclose(fuser.transform(other), fuser.transform(tables))
    with pytest.raises(SermmError, match="not fitted"):
        InterpFuser().transform(tables)
