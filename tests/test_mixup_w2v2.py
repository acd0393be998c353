"""The label-adaptive mixup recipe and the wav2vec 2.0 fine-tuning strategies (V-FT, TAPT, P-TAPT):
mixing, the pre-training steps, two-step training and prediction from the CLI, leave-one-group-out
cross-validation, bad input. Tiny random checkpoints, sub-second WAVs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from audio_tiny import SSL, make_backbone, one_thread, tone, write_wav  # noqa: F401 (one_thread: autouse)
from click.testing import CliRunner
from conftest import assert_one_line_error
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score, balanced_accuracy_score

from sermm.cli.data import main as data_main
from sermm.cli.system import main
from sermm.systems.audio.data import AudioItems
from sermm.systems.audio.io import probe_audio
from sermm.systems.mixup import MixupConfig, MixupModel, mix_batch, mixup_weights
from sermm.systems.w2v2.pretrain import (
    crop_batches,
    kmeans_targets,
    load_ptapt_model,
    load_tapt_model,
    n_frames,
    pad_labels,
    ptapt_step,
    tapt_step,
)
from sermm.systems.w2v2.recipe import W2V2Config
from sermm.tables import read_posteriors

CLASSES = {"angry": 420.0, "neutral": 150.0, "sad": 260.0}
#: A codebook small enough for a tiny model (wav2vec 2.0's quantiser: G groups of V entries).
CODEBOOK = dict(
    num_codevector_groups=2,
    num_codevectors_per_group=8,
    codevector_dim=16,
    proj_codevector_dim=16,
    num_negatives=4,
)
FAST = ["epochs=1", "num_workers=0", "batch_size=5", "effective_batch=5", "max_train_s=1.0", "lr=1e-3"]


def sets(*extra: str) -> list[str]:
    return [a for s in (*FAST, *extra) for a in ("--set", s)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """9 training clips (3 speakers, every class in each) and 4 dev clips, 0.6-1.6 s."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    for split, n in (("train", 9), ("dev", 4)):
        lines = ["id,path,label,speaker,session"]
        for i in range(n):
            label = list(CLASSES)[i % 3]
            write_wav(
                root / f"{split}{i}.wav", tone(float(rng.uniform(0.6, 1.6)), freq=CLASSES[label], seed=i)
            )
            lines.append(f"{split}{i},{split}{i}.wav,{label},spk{i // 3},Ses0{i // 3 + 1}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {"hubert": make_backbone("hubert", root), "wav2vec2": make_backbone("wav2vec2", root, **CODEBOOK)}


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def train_cli(system, corpus, backbone, out, *extra):
    return cli(
        system,
        "train",
        "--train",
        corpus / "train.csv",
        "--dev",
        corpus / "dev.csv",
        "--backbone",
        backbone,
        "--out",
        out,
        "-q",
        *extra,
    )


def assert_valid_posteriors(path, n):
    table = read_posteriors(path)
    assert sorted(table.columns) == sorted(CLASSES) and len(table) == n
    assert np.allclose(table.values.sum(1), 1.0) and np.isfinite(table.values).all()
    checked = CliRunner().invoke(data_main, ["check", str(path)])
    assert checked.exit_code == 0 and f"posterior, {n} rows, 3 classes" in checked.output, checked.output


# ------------------------------------------------------------------------------------------------ mixup


def test_mixup_label_weights_are_the_length_ratio_and_sum_to_one():
    lengths = torch.tensor([16000, 8000, 4000])
    partner = torch.tensor([1, 2, 0])
    w = mixup_weights(lengths, partner, 0.5)
    torch.testing.assert_close(w, torch.tensor([16 / 24, 8 / 12, 4 / 20]))  # l_i / (l_i + l_j) at λ = 0.5
    lam = 0.3
    by_hand = [lam * a / (lam * a + (1 - lam) * b) for a, b in ((16000, 8000), (8000, 4000), (4000, 16000))]
    torch.testing.assert_close(mixup_weights(lengths, partner, lam), torch.tensor(by_hand))

    x = torch.randn(3, 16000)
    mask = (torch.arange(16000)[None, :] < lengths[:, None]).long()
    x = x * mask
    target = torch.tensor([0, 2, 2])
    mixed, union, soft = mix_batch(x, mask, target, 3, 0.5, partner)
    torch.testing.assert_close(soft.sum(1), torch.ones(3))
    torch.testing.assert_close(soft[0], torch.tensor([16 / 24, 0.0, 8 / 24]))  # angry 16000 + sad 8000
    torch.testing.assert_close(soft[1], torch.tensor([0.0, 0.0, 1.0]))  # both sad
    torch.testing.assert_close(mixed, 0.5 * x + 0.5 * x[partner])
    assert union.sum(1).tolist() == [16000, 8000, 16000]


def test_the_model_mixes_training_batches_only(checkpoints):
    from sermm.systems.audio.utterance import load_waveform_backbone

    config = MixupConfig(backbone=str(checkpoints["hubert"]), hidden_dim=8, keep_layers=1)
    backbone = load_waveform_backbone(config)
    assert len(backbone.base_model.encoder.layers) == 1
    model = MixupModel(backbone, 3, config)
    batch = backbone.features([tone(0.5), tone(1.0, seed=1), tone(0.7, seed=2)])
    batch["target"] = torch.tensor([0, 1, 2])
    out = model.train()(batch)
    assert out["soft_target"].shape == (3, 3) and torch.isfinite(out["centre_loss"])
    assert out["embedding"].shape == (3, 8)
    out = model.eval()(batch)
    assert "soft_target" not in out and "centre_loss" not in out


def test_mixup_trains_two_steps_and_predicts_a_valid_posterior_file(corpus, checkpoints, tmp_path):
    result = train_cli(
        "mixup",
        corpus,
        checkpoints["hubert"],
        tmp_path / "run",
        "--keep-layers",
        "1",
        *sets("hidden_dim=8", "centre_weight=0.1"),
    )
    assert result.exit_code == 0, result.output
    assert "best epoch 1" in result.output
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert np.isfinite(record["train_loss"])
    state = load_file(tmp_path / "run" / "best" / "model.safetensors")
    assert state["centres.centres"].shape == (3, 8)
    out, emb = tmp_path / "m_dev.csv", tmp_path / "m_dev.emb.csv"
    result = cli(
        "mixup",
        "predict",
        tmp_path / "run",
        "--manifest",
        corpus / "dev.csv",
        "-o",
        out,
        "--embeddings",
        emb,
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert_valid_posteriors(out, 4)


# ------------------------------------------------------------------------------------------- pre-training


def items_of(corpus, split="train"):
    import csv

    rows = list(csv.DictReader(open(corpus / f"{split}.csv")))
    paths = [corpus / r["path"] for r in rows]
    infos, _ = probe_audio(paths, progress=False)
    return AudioItems(paths, infos)


def test_a_ptapt_masked_prediction_step_runs_on_kmeans_targets_of_each_cluster_count(corpus, checkpoints):
    from sermm.systems.audio.backbones import load_features

    config = W2V2Config(
        backbone=str(checkpoints["wav2vec2"]),
        strategy="p-tapt",
        clusters=[3, 4],
        batch_size=4,
        max_train_s=1.0,
        mask_time_length=4,
    )
    items, features = items_of(corpus), load_features(config.backbone)
    model = load_ptapt_model(config.backbone, "wav2vec2", config)
    labels, models = kmeans_targets(model, items, features, config, torch.device("cpu"), quiet=True)
    for i, row in enumerate(labels):  # one cluster id per real frame of the crop and cluster count
        seconds = min(items.infos[i].duration, 1.0)
        assert row.shape == (n_frames(model, round(seconds * 16000)), 2)
        assert set(row[:, 0]) <= set(range(3)) and set(row[:, 1]) <= set(range(4))
    assert [m.cluster_centers_.shape for m in models] == [(3, SSL["hidden_size"]), (4, SSL["hidden_size"])]
    heads = torch.nn.ModuleList(torch.nn.Linear(SSL["hidden_size"], k) for k in (3, 4))
    rows, inputs = next(crop_batches(items, features, batch_size=4, max_s=1.0, shuffle=False, seed=0))
    target = pad_labels(labels, rows, n_frames(model, inputs["input_values"].shape[1]), torch.device("cpu"))
    assert target.shape[2] == 2 and (target[..., 0] == -100).equal(target[..., 1] == -100)
    model.train()
    torch.manual_seed(0)
    loss = ptapt_step(model, heads, inputs, target, config)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert all(head.weight.grad.abs().sum() > 0 for head in heads)
    assert model.encoder.layers[0].attention.q_proj.weight.grad.abs().sum() > 0
    assert model.masked_spec_embed.grad.abs().sum() > 0  # masked frames were replaced by the mask vector
    assert model.feature_extractor.conv_layers[0].conv.weight.grad is None  # the CNN stays frozen
    # the loss is the sum of the heads' losses: each head alone, on the same mask draw
    parts = []
    for k in range(2):
        torch.manual_seed(0)
        np.random.seed(0)
        parts.append(ptapt_step(model, heads[k : k + 1], inputs, target[..., k : k + 1], config).item())
    torch.manual_seed(0)
    np.random.seed(0)
    assert ptapt_step(model, heads, inputs, target, config).item() == pytest.approx(sum(parts), rel=1e-5)


def test_kmeans_source_is_a_w2v2_runs_finetuned_backbone(corpus, checkpoints, tmp_path):
    """P-TAPT's first phase as FT-w2v2-ser: the frames clustered come from a model fine-tuned on the
    emotion labels (a V-FT run), not from the backbone being pre-trained."""
    from sermm.systems.audio.backbones import load_features
    from sermm.systems.w2v2.pretrain import kmeans_source

    result = train_cli("w2v2", corpus, checkpoints["wav2vec2"], tmp_path / "vft", *sets("lr=1e-2"))
    assert result.exit_code == 0, result.output
    config = W2V2Config(
        backbone=str(checkpoints["wav2vec2"]), strategy="p-tapt", kmeans_model=str(tmp_path / "vft")
    )
    model = load_ptapt_model(config.backbone, "wav2vec2", config)
    features = load_features(config.backbone)
    source, _ = kmeans_source(config, model, features, torch.device("cpu"))
    tuned = load_file(tmp_path / "vft" / "best" / "model.safetensors")
    key = "encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(source.state_dict()[key], tuned[f"backbone.model.{key}"])
    assert not torch.equal(source.state_dict()[key], model.state_dict()[key])  # fine-tuning moved it
    same, _ = kmeans_source(W2V2Config(backbone=config.backbone), model, features, torch.device("cpu"))
    assert same is model
    # another checkpoint: its own weights (a HuBERT's frames for a wav2vec2 backbone, same strides)
    other = W2V2Config(backbone=config.backbone, strategy="p-tapt", kmeans_model=str(checkpoints["hubert"]))
    source, _ = kmeans_source(other, model, features, torch.device("cpu"))
    hubert = load_file(checkpoints["hubert"] / "model.safetensors")
    assert type(source).__name__ == "HubertModel"
    assert torch.equal(source.state_dict()[key], hubert[key])


def test_pretraining_rate_warms_up_then_decays_linearly_to_zero():
    """The training loop's schedule over the pre-training steps: 4 warm-up steps, then linear decay
    over the remaining 8, reaching 0 at the last one."""
    from sermm.systems.training import warmup_schedule

    config = W2V2Config(
        strategy="tapt", pretrain_schedule="linear", pretrain_warmup_steps=4, pretrain_steps=12
    )
    schedule = warmup_schedule(config.pretrain_schedule, config.pretrain_warmup_steps, config.pretrain_steps)
    factors = [schedule(step) for step in range(13)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4:] == pytest.approx([max(0.0, 1 - (k + 1) / 8) for k in range(9)])
    default = W2V2Config(strategy="tapt")
    constant = warmup_schedule(
        default.pretrain_schedule, default.pretrain_warmup_steps, default.pretrain_steps
    )
    assert [constant(s) for s in (0, 5, 10**6)] == [1.0, 1.0, 1.0]


def test_a_tapt_step_gives_a_finite_contrastive_loss(corpus, checkpoints):
    from sermm.systems.audio.backbones import load_features

    config = W2V2Config(backbone=str(checkpoints["wav2vec2"]), strategy="tapt", mask_time_length=4)
    model = load_tapt_model(config.backbone, config).train()
    _, inputs = next(
        crop_batches(
            items_of(corpus), load_features(config.backbone), batch_size=3, max_s=1.0, shuffle=False, seed=0
        )
    )
    loss, parts = tapt_step(model, inputs, config)
    assert torch.isfinite(loss) and np.isfinite(parts["contrastive"]) and parts["contrastive"] > 0
    loss.backward()
    assert model.quantizer.codevectors.grad.abs().sum() > 0


@pytest.mark.parametrize("strategy", ["v-ft", "tapt", "p-tapt"])
def test_each_strategy_trains_two_steps_and_predicts_a_valid_posterior_file(
    corpus, checkpoints, tmp_path, strategy
):
    extra = ("pretrain_steps=2", "pretrain_epochs=1", "clusters=4,6", "mask_time_length=4")
    result = train_cli(
        "w2v2", corpus, checkpoints["wav2vec2"], tmp_path / "run", "--strategy", strategy, *sets(*extra)
    )
    assert result.exit_code == 0, result.output
    pretrained = tmp_path / "run" / "pretrained"
    if strategy == "v-ft":
        assert not pretrained.exists()
    else:
        (record,) = [json.loads(line) for line in (pretrained / "log.jsonl").read_text().splitlines()]
        assert record["steps"] == 2 and np.isfinite(record["loss"])
        state = load_file(pretrained / "model.safetensors")
        assert "encoder.layers.0.attention.q_proj.weight" in state
    out = tmp_path / "w_dev.csv"
    result = cli("w2v2", "predict", tmp_path / "run", "--manifest", corpus / "dev.csv", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert_valid_posteriors(out, 4)


# --------------------------------------------------------------------------------------- cross-validation


def test_folds_train_one_run_per_group_and_report_wa_ua_of_the_pooled_posteriors(
    corpus, checkpoints, tmp_path
):
    out = tmp_path / "cv"
    result = cli(
        "w2v2",
        "train",
        "--train",
        corpus / "train.csv",
        "--folds",
        "session",
        "--backbone",
        checkpoints["wav2vec2"],
        "--out",
        out,
        "-q",
        *sets("batch_size=3"),
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("fold-*")) == ["fold-Ses01", "fold-Ses02", "fold-Ses03"]
    report = json.loads((out / "cv.json").read_text())
    assert_valid_posteriors(out / "cv.csv", 9)
    table = read_posteriors(out / "cv.csv")
    labels = np.array([list(CLASSES)[i % 3] for i in range(9)])
    pred = np.array(table.columns)[table.values.argmax(1)]
    assert report["pooled"]["wa"] == pytest.approx(accuracy_score(labels, pred))
    assert report["pooled"]["ua"] == pytest.approx(balanced_accuracy_score(labels, pred))
    for k in range(3):  # each fold's numbers are those of its three held-out clips
        rows = slice(3 * k, 3 * k + 3)
        assert report["folds"][f"Ses0{k + 1}"]["wa"] == pytest.approx(
            accuracy_score(labels[rows], pred[rows])
        )
        fold = read_posteriors(out / f"fold-Ses0{k + 1}" / "test.csv")
        assert fold.ids.tolist() == [f"train{i}" for i in range(3 * k, 3 * k + 3)]
    assert f"pooled: n 9, WA {report['pooled']['wa']:.4f}" in result.output


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_and_writes_nothing(corpus, checkpoints, tmp_path):
    out = tmp_path / "run"
    cases = [
        (("mixup", corpus, checkpoints["hubert"], out, "--task", "attributes"), "task must be categorical"),
        (("w2v2", corpus, checkpoints["hubert"], out, "--strategy", "tapt"), "needs a wav2vec2 / XLS-R"),
        (("mixup", corpus, checkpoints["hubert"], out, "--set", "centre_mode=max"), "centre_mode"),
        (("w2v2", corpus, checkpoints["hubert"], out, "--set", "clusters=1"), "clusters"),
        (("w2v2", corpus, checkpoints["hubert"], out, "--set", "pretrain_schedule=linear"), "pretrain_steps"),
        (("w2v2", corpus, checkpoints["hubert"], out, "--set", "kmeans_model=runs/none"), "p-tapt"),
        (  # a folder that is no model (and no run): one line, before anything is written
            ("w2v2", corpus, checkpoints["hubert"], out, "--strategy", "p-tapt", "--set",
             f"kmeans_model={corpus}"),
            f"{corpus}: model_type None is not a known speech backbone",
        ),
        (  # a text model's frames are no speech frames
            ("w2v2", corpus, checkpoints["hubert"], out, "--strategy", "p-tapt", "--set",
             f"kmeans_model={make_backbone('w2v-bert', tmp_path)}"),
            "wav2vec2-family",
        ),
        (("mixup", corpus, checkpoints["hubert"], out, "--keep-layers", "5"), "only 2 transformer layers"),
    ]
    for args, fragment in cases:
        assert_one_line_error(train_cli(*args), fragment)
        assert not out.exists()
    result = cli(
        "mixup", "train", "--train", corpus / "train.csv", "--backbone", checkpoints["hubert"], "--out", out
    )
    assert_one_line_error(result, "--dev", "--folds")
    result = cli(
        "w2v2",
        "train",
        "--train",
        corpus / "train.csv",
        "--folds",
        "room",
        "--backbone",
        checkpoints["hubert"],
        "--out",
        out,
    )
    assert_one_line_error(result, "--folds room", "no such column")
    lines = (corpus / "train.csv").read_text().splitlines()
    lonely = corpus / "lonely.csv"  # 'sad' only in speaker spk0: the spk0 fold has no sad training row
    lonely.write_text("\n".join([*lines[:4], *(ln.replace("sad", "neutral") for ln in lines[4:])]) + "\n")
    result = cli(
        "w2v2",
        "train",
        "--train",
        lonely,
        "--folds",
        "speaker",
        "--backbone",
        checkpoints["hubert"],
        "--out",
        out,
        "-q",
    )
    assert_one_line_error(result, "group 'spk0' held out", "sad")
    assert not out.exists()


@pytest.mark.parametrize(
    ("yaml_text", "sets_", "expected"),
    [
        ("clusters: 64\n", (), [64]),  # one number where a list goes
        ("clusters: [64, 512, 4096]\n", (), [64, 512, 4096]),
        ("", ("clusters=64,512,4096",), [64, 512, 4096]),
        ("", ("clusters=8",), [8]),
    ],
)
def test_cluster_counts_read_as_a_list_from_yaml_and_set(tmp_path, yaml_text, sets_, expected):
    from sermm.systems.config import load_config

    path = tmp_path / "run.yaml"
    path.write_text(yaml_text)
    config = load_config(W2V2Config, path, sets_, strategy="p-tapt")
    assert config.clusters == expected


def test_shipped_recipe_configs_carry_the_authors_settings():
    from pathlib import Path

    from sermm.systems.config import load_config

    examples = Path(__file__).resolve().parent.parent / "examples" / "recipes"
    kang = load_config(MixupConfig, examples / "kang_mixup.yaml")
    assert (kang.keep_layers, kang.hidden_dim, kang.centre_weight, kang.mixup_prob) == (22, 64, 0.002, 0.5)
    assert (kang.optimizer, kang.lr, kang.batch_size, kang.max_train_s) == ("adam", 1e-4, 16, 6.25)
    ft = load_config(
        W2V2Config, examples / "ftw2v2.yaml", ("clusters=64,512,4096",), strategy="p-tapt"
    )
    assert (ft.backbone, ft.lr, ft.effective_batch, ft.epochs) == ("facebook/wav2vec2-base", 1e-4, 64, 15)
    assert (ft.pretrain_steps, ft.pretrain_warmup_steps, ft.clusters) == (20000, 100, [64, 512, 4096])
