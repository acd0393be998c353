"""sermm.sidecar: one Sidecar type, written flat, paths relative to the file, read back from anywhere."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sermm.errors import SermmError
from sermm.sidecar import Sidecar, read_sidecar, sidecar_path, write_sidecar


def test_what_the_systems_write_reads_back(tmp_path):
    """The call the audio/text systems make."""
    scores = tmp_path / "a_dev.csv"
    sidecar = Sidecar(
        system="w2v2-bert", classes=["angry", "sad"], values="probability",
        train_prior={"angry": 0.3, "sad": 0.7},
        extra={"model_id": "facebook/w2v-bert-2.0", "config_hash": "ab12"},
    )
    write_sidecar(scores, sidecar)
    doc = json.loads(sidecar_path(scores).read_text())
    assert list(doc) == ["system", "classes", "values", "train_prior", "model_id", "config_hash", "created"]
    assert doc["model_id"] == "facebook/w2v-bert-2.0"  # extra keys sit flat beside the known ones
    back = read_sidecar(scores)
    assert back.extra == {"model_id": "facebook/w2v-bert-2.0", "config_hash": "ab12"}
    assert back.train_prior == {"angry": 0.3, "sad": 0.7} and back.created == doc["created"]
    assert read_sidecar(tmp_path / "none.csv") is None


def test_paths_are_relative_to_the_file_and_read_back_from_here(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    scores = os.path.join("out", "fused.csv")
    write_sidecar(scores, Sidecar(system="f", inputs=["a.csv", "out/b.csv"], models=["out/m.json"]))
    doc = json.loads(sidecar_path(scores).read_text())
    assert doc["inputs"] == [os.path.join("..", "a.csv"), "b.csv"] and doc["models"] == ["m.json"]
    back = read_sidecar(scores)
    assert back.inputs == ["a.csv", os.path.join("out", "b.csv")]
    assert back.models == [os.path.join("out", "m.json")]
    monkeypatch.chdir(tmp_path / "out")
    assert read_sidecar("fused.csv").inputs == [os.path.join("..", "a.csv"), "b.csv"]


def test_legacy_model_key_and_value_spellings():
    old = Sidecar.from_dict({"system": "fusion-logreg", "model": "m.json", "values": "logits"})
    assert old.models == ["m.json"] and "model" not in old.extra and old.values == "logit"
    with pytest.raises(SermmError, match="s.json: 'values' must be 'probability' or 'logit'"):
        Sidecar.from_dict({"values": "scores"}, source="s.json")
    with pytest.raises(SermmError, match="expected a JSON object"):
        Sidecar.from_dict([1, 2])
    with pytest.raises(ValueError, match="clash"):
        Sidecar(extra={"system": "x"}).to_dict()


def test_prior_over_classes():
    sidecar = Sidecar(train_prior={"a": 2.0, "b": 1.0, "c": 1.0})
    assert sidecar.prior_over(["a", "b"]).tolist() == [2 / 3, 1 / 3]
    assert sidecar.prior_over(["a", "z"]) is None and Sidecar().prior_over(["a"]) is None
    listed = Sidecar.from_dict({"classes": ["a", "b"], "train_prior": [0.25, 0.75]})
    assert np.array_equal(listed.prior_over(["b", "a"]), [0.75, 0.25])
