"""Every backbone kind through the production loader: tiny random checkpoints saved with
save_pretrained, kind from model_type, frame masks, padding invariance, fine-tuning modes."""

import numpy as np
import pytest
import torch
from audio_tiny import make_backbone, one_thread, tone  # noqa: F401 (one_thread: autouse fixture)
from safetensors.torch import load_file

from sermm.errors import SermmError
from sermm.systems.audio.backbones import KINDS, LoraSettings, detect_kind, load_backbone
from sermm.systems.audio.model import AudioModel
from sermm.systems.losses import neg_mean_ccc, weighted_cross_entropy

SAVED = ("w2v-bert", "sonar", "wav2vec2", "hubert", "wavlm")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    saved = {kind: make_backbone(kind, root) for kind in SAVED}
    saved["xls-r"] = saved["wav2vec2"]  # the same architecture, chosen by the kind argument
    return saved


def load(checkpoints, kind, **kwargs):
    return load_backbone(checkpoints[kind], kind="xls-r" if kind == "xls-r" else None, **kwargs)


def test_kind_comes_from_the_checkpoints_model_type(checkpoints, tmp_path):
    assert {k: detect_kind(checkpoints[k]) for k in SAVED} == {k: k for k in SAVED}
    assert detect_kind(checkpoints["wav2vec2"], "xls-r") == "xls-r"
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SermmError, match="model_type 'bert' is not a known speech backbone"):
        detect_kind(tmp_path / "odd")
    with pytest.raises(SermmError, match="cannot read the backbone's config.json"):
        detect_kind(tmp_path / "nothing-here")
    with pytest.raises(SermmError, match="unknown backbone kind"):
        detect_kind(tmp_path / "odd", "conformer")


@pytest.mark.parametrize("kind", KINDS)
def test_loader_restores_the_saved_weights_and_feature_extractor(checkpoints, kind):
    backbone = load(checkpoints, kind, finetune="frozen")
    saved = load_file(str(checkpoints[kind] / "model.safetensors"))
    state = backbone.base_model.state_dict()
    for name, tensor in saved.items():
        torch.testing.assert_close(state[name], tensor, rtol=0, atol=0)
    if kind in ("w2v-bert", "sonar"):
        assert backbone.feature_extractor.padding_value == 1.0  # as facebook/w2v-bert-2.0 ships it
        assert backbone.input_name == "input_features"
    else:
        assert backbone.input_name == "input_values"


@pytest.mark.parametrize("kind", SAVED)  # xls-r is wav2vec2's architecture
@pytest.mark.parametrize("layers", ["last", "weighted"])
def test_padding_changes_nothing_short_utterance_alone_or_padded_in_a_batch(checkpoints, kind, layers):
    model = AudioModel(load(checkpoints, kind, layers=layers, finetune="lora"), 3).eval()
    short, long = tone(0.55, seed=1), tone(1.3, freq=300, seed=2)
    batch = model.backbone.features([short, long])
    name = model.backbone.input_name
    noisy = dict(batch)
    noisy[name] = batch[name].clone()
    pad = batch["attention_mask"][0] == 0
    assert pad.any()
    noisy[name][0, pad] = 5 * torch.randn_like(noisy[name][0, pad])  # garbage in the padded part
    alone = model.backbone.features([short])
    with torch.no_grad():
        out, out_noisy, out_alone = model(batch), model(noisy), model(alone)
    for key in ("scores", "embedding"):
        torch.testing.assert_close(out[key][0], out_noisy[key][0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(out[key][0], out_alone[key][0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "wavlm"])
@pytest.mark.parametrize("adapter", [False, True])
def test_frame_masks_match_transformers_for_waveform_models(tmp_path, kind, adapter):
    extra = {"add_adapter": True, "num_adapter_layers": 2, "adapter_stride": 2, "output_hidden_size": 32}
    path = make_backbone(kind, tmp_path, **(extra if adapter and kind == "wav2vec2" else {}))
    backbone = load_backbone(path, finetune="frozen")
    batch = backbone.features([tone(0.37), tone(1.01), tone(0.8)])
    with torch.no_grad():
        hidden, mask = backbone(batch)
    reference = backbone.base_model._get_feature_vector_attention_mask(
        hidden.shape[1], batch["attention_mask"]
    )
    torch.testing.assert_close(mask, reference.bool())
    assert mask.sum(1).tolist()[1] == hidden.shape[1]  # the longest utterance fills every frame


def test_w2v_bert_adapter_mask_matches_transformers(tmp_path):
    extra = {"add_adapter": True, "num_adapter_layers": 1, "adapter_stride": 2, "adapter_kernel_size": 3}
    backbone = load_backbone(make_backbone("w2v-bert", tmp_path, **extra), finetune="frozen")
    batch = backbone.features([tone(0.37), tone(1.01)])
    with torch.no_grad():
        hidden, mask = backbone(batch)
    reference = backbone.base_model._get_feature_vector_attention_mask(
        hidden.shape[1], batch["attention_mask"]
    )
    torch.testing.assert_close(mask, reference.bool())
    assert hidden.shape[1] < batch["attention_mask"].shape[1]


def two_steps(model, task):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    batch = model.backbone.features([tone(0.6, seed=i, freq=150 + 40 * i) for i in range(4)])
    losses = []
    for _ in range(2):
        out = model(batch)
        if task == "categorical":
            loss = weighted_cross_entropy(out["scores"], torch.tensor([0, 1, 2, 1]))
        else:
            loss = neg_mean_ccc(out["scores"], torch.rand(4, 3, generator=torch.Generator().manual_seed(0)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(("kind", "task"), [(k, "categorical") for k in SAVED] + [("w2v-bert", "attributes")])
def test_lora_and_head_train_while_the_base_stays_frozen(checkpoints, kind, task):
    torch.manual_seed(0)
    model = AudioModel(load(checkpoints, kind, finetune="lora"), 3, task=task)
    model.train()
    named = dict(model.named_parameters())
    lora = {n for n in named if "lora_" in n}
    base = {n for n in named if n.startswith("backbone.") and "lora_" not in n}
    head = {n for n in named if not n.startswith("backbone.")}
    assert lora and base and head
    assert all(named[n].requires_grad for n in lora | head) and not any(named[n].requires_grad for n in base)
    before = {n: p.detach().clone() for n, p in named.items()}
    losses = two_steps(model, task)
    assert all(np.isfinite(losses))
    changed = {n for n, p in named.items() if not torch.equal(p.detach(), before[n])}
    assert {n for n in lora if "lora_B" in n} <= changed  # every adapter moved (B starts at zero)
    assert head <= changed
    assert not changed & base


def test_wavlm_attention_through_its_modules_equals_transformers(checkpoints):
    from transformers import WavLMModel

    backbone = load_backbone(checkpoints["wavlm"], finetune="frozen")
    routed = backbone.base_model.eval()
    original = WavLMModel.from_pretrained(checkpoints["wavlm"]).eval()
    batch = backbone.features([tone(0.7), tone(0.4, seed=3)])
    with torch.no_grad():
        a = routed(**batch).last_hidden_state
        b = original(**batch).last_hidden_state
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_full_trains_all_but_the_conv_encoder_and_frozen_trains_only_the_head(checkpoints):
    full = AudioModel(load(checkpoints, "wav2vec2", finetune="full"), 2)
    names = {n for n, p in full.named_parameters() if not p.requires_grad}
    assert names and all(".feature_extractor." in n for n in names)
    frozen = AudioModel(
        load(checkpoints, "hubert", finetune="frozen", layers="weighted"), 2, frozen_backbone=True
    )
    trainable = {n for n, p in frozen.named_parameters() if p.requires_grad}
    assert "backbone.layer_mix.weights" in trainable
    assert not {n for n in trainable if n.startswith("backbone.model.")}
    frozen.train()
    assert not frozen.backbone.model.training and frozen.embedding.training


def test_lora_settings_are_used_and_bad_targets_are_one_error(checkpoints):
    backbone = load(
        checkpoints, "w2v-bert", lora=LoraSettings(rank=4, alpha=8, dropout=0.0, targets=("linear_q",))
    )
    shapes = {n: tuple(p.shape) for n, p in backbone.named_parameters() if "lora_A" in n}
    assert shapes and all(s[0] == 4 for s in shapes.values()) and all("linear_q" in n for n in shapes)
    with pytest.raises(SermmError, match="LoRA targets"):
        load(checkpoints, "hubert", lora=LoraSettings(targets=("no_such_module",)))


def test_weighted_layers_mix_every_hidden_state(checkpoints):
    backbone = load(checkpoints, "sonar", layers="weighted")
    assert backbone.layer_mix.weights.shape == (3,)  # input of the 2 conformer layers and their outputs
    with pytest.raises(SermmError, match="layers must be one of"):
        load(checkpoints, "sonar", layers="middle")


def test_sonar_directory_round_trip_and_bad_directories(checkpoints, tmp_path):
    from sermm.systems.audio.sonar import SonarSpeechEncoder

    model = SonarSpeechEncoder.from_pretrained(checkpoints["sonar"]).eval()
    model.save_pretrained(tmp_path / "again")
    again = SonarSpeechEncoder.from_pretrained(tmp_path / "again").eval()
    x = torch.randn(2, 20, 160)
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[1, 12:] = 0
    with torch.no_grad():
        torch.testing.assert_close(model(x, mask), again(x, mask), rtol=0, atol=0)
    (tmp_path / "again" / "model.safetensors").unlink()
    with pytest.raises(SermmError, match="SONAR weights not found"):
        SonarSpeechEncoder.from_pretrained(tmp_path / "again")


@pytest.mark.parametrize("kind", ["w2v-bert", "sonar", "wavlm"])
def test_gradient_checkpointing_still_trains_the_adapters(checkpoints, kind):
    plain = AudioModel(load(checkpoints, kind, finetune="lora"), 3).train()
    torch.manual_seed(0)
    saved = AudioModel(load(checkpoints, kind, finetune="lora", gradient_checkpointing=True), 3).train()
    saved.load_state_dict(plain.state_dict())
    batch = plain.backbone.features([tone(0.5, seed=i) for i in range(3)])
    assert any(getattr(m, "gradient_checkpointing", False) is True for m in saved.modules())
    for model in (plain, saved):
        torch.manual_seed(1)  # the same dropout masks (checkpointing replays the random state)
        weighted_cross_entropy(model(batch)["scores"], torch.tensor([0, 1, 2])).backward()
    grads = {n: p.grad for n, p in plain.named_parameters() if "lora_B" in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values())
    for name, p in saved.named_parameters():
        if name in grads:
            torch.testing.assert_close(p.grad, grads[name], rtol=1e-4, atol=1e-6)
