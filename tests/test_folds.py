"""Leave-one-group-out folds and their WA / UA reports."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from sermm.errors import SermmError
from sermm.systems.folds import dev_split, fold_dir_name, fold_report, group_folds


def test_every_group_is_held_out_once_and_never_trained_on():
    groups = np.array(["s2", "s1", "s3", "s1", "s2", "s3", "s3"])
    folds = group_folds(groups)
    assert [g for g, _, _ in folds] == ["s1", "s2", "s3"]
    held = np.concatenate([test for _, _, test in folds])
    assert sorted(held.tolist()) == list(range(len(groups)))
    for g, train, test in folds:
        assert set(groups[test]) == {g} and g not in set(groups[train])
        assert len(train) + len(test) == len(groups)
    with pytest.raises(SermmError, match="at least two groups"):
        group_folds(np.array(["a", "a"]))


def test_dev_split_holds_out_every_nth_training_row():
    train, dev = dev_split(np.array([3, 4, 7, 8, 9]), 2)
    assert train.tolist() == [4, 8] and dev.tolist() == [3, 7, 9]


def test_wa_and_ua_per_fold_and_pooled_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
    groups = rng.choice(["a", "b", "c", "d", "e"], 200)
    report = fold_report(y, pred, groups, 4)
    for g in "abcde":
        rows = groups == g
        assert report["folds"][g]["n"] == rows.sum()
        assert report["folds"][g]["wa"] == pytest.approx(accuracy_score(y[rows], pred[rows]))
        assert report["folds"][g]["ua"] == pytest.approx(balanced_accuracy_score(y[rows], pred[rows]))
    assert report["pooled"]["wa"] == pytest.approx(accuracy_score(y, pred))
    assert report["pooled"]["ua"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert report["mean"]["ua"] == pytest.approx(np.mean([report["folds"][g]["ua"] for g in "abcde"]))


def test_fold_folder_names_are_safe():
    assert fold_dir_name("Ses01/F") == "fold-Ses01_F" and fold_dir_name("03") == "fold-03"


def test_groups_come_from_any_manifest_column_row_by_row(tmp_path):
    from sermm.systems.folds import read_groups
    from sermm.systems.manifest import read_manifest

    path = tmp_path / "m.csv"
    path.write_text("id,text,label,speaker,session\na,x,neu,s1,Ses01\nb,y,ang,s2,Ses02\nc,z,neu,s3,\n")
    manifest = read_manifest(path, need="text")
    assert read_groups(manifest, "speaker").tolist() == ["s1", "s2", "s3"]
    assert read_groups(manifest.take(np.array([1, 0])), "session").tolist() == ["Ses02", "Ses01"]
    with pytest.raises(SermmError, match="line 4 .* empty --folds column 'session'"):
        read_groups(manifest, "session")
    with pytest.raises(SermmError, match="--folds room: no such column"):
        read_groups(manifest, "room")
