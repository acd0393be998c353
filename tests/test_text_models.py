"""Text backbones and the text model: tiny random LLaMA/GPT-2/RoBERTa/BERT checkpoints, production loader."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from safetensors.torch import load_file, save_file  # noqa: E402
from text_checkpoints import (  # noqa: E402
    bitsandbytes_reason,
    plain_tokenizer,
    save_bert,
    save_gpt2,
    save_llama,
    save_roberta,
)

from sermm.errors import SermmError  # noqa: E402
from sermm.systems.losses import neg_mean_ccc, weighted_cross_entropy  # noqa: E402
from sermm.systems.text.backbones import load_backbone, load_tokenizer  # noqa: E402
from sermm.systems.text.config import TextConfig  # noqa: E402
from sermm.systems.text.data import TextDataset, tokenize  # noqa: E402
from sermm.systems.text.model import TextModel  # noqa: E402

TEXTS = ["i am so happy today", "", "terrible news we lost again never thought it would end like that", "no"]
TARGETS = np.array([3, 4, 5, 2])


class _Length16(list):
    """Equal to any list of 16 token ids (a truncated row)."""

    def __eq__(self, other):
        return isinstance(other, list) and len(other) == 16


ANY_16 = _Length16()


needs_bnb = pytest.mark.skipif(bitsandbytes_reason() is not None, reason=str(bitsandbytes_reason()))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_checkpoints")
    return {
        "llama": str(save_llama(root / "llama")),
        "roberta": str(save_roberta(root / "roberta")),
        "bert": str(save_bert(root / "bert")),
        "gpt2": str(save_gpt2(root / "gpt2")),
    }


def build(backbone: str, n_out: int = 7, **settings) -> tuple[TextModel, object]:
    """A text model and its tokenizer, loaded as the CLI loads them (small LoRA rank for speed)."""
    settings = {"lora_r": 8, "lora_alpha": 8, **settings}
    tokenizer = load_tokenizer(backbone)
    torch.manual_seed(0)
    model = TextModel(load_backbone(TextConfig(backbone=backbone, **settings), n_out, tokenizer))
    return model, tokenizer


def batch(tokenizer, texts=TEXTS, targets=TARGETS, side="right"):
    """A padded batch of ``texts`` with their targets, as the training loop makes it."""
    data = TextDataset(tokenize(tokenizer, texts, 32), tokenizer.pad_token_id, side)
    out = data.collate([data[i] for i in range(len(data))])
    out["target"] = torch.as_tensor(targets)
    return out


def rows(ids) -> list[list[int]]:
    return [row.tolist() for row in (ids[i] for i in range(len(ids)))]


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def frozen(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}


def two_steps(model, b, loss_fn) -> list[float]:
    """Two AdamW steps on one batch; the losses."""
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(2):
        loss = loss_fn(model(b)["scores"], b["target"])
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


def check_lora_training(model, tokenizer):
    """Two steps: finite losses, every LoRA matrix and the head change, the base stays as it was."""
    before, base = trainable(model), frozen(model)
    assert any("lora_A" in n for n in before) and any("modules_to_save" in n for n in before)
    assert all("lora_" in n or "modules_to_save" in n for n in before)
    losses = two_steps(model, batch(tokenizer), weighted_cross_entropy)
    assert np.isfinite(losses).all()
    after = trainable(model)
    for name in before:
        if "lora_B" in name or "lora_A" in name or "modules_to_save" in name:
            assert not torch.equal(before[name], after[name]), f"{name} did not change"
    for name, value in frozen(model).items():
        assert torch.equal(value, base[name]), f"base weight {name} changed"


def test_llama_pad_token_is_eos_and_set_in_the_model_config(checkpoints):
    model, tokenizer = build(checkpoints["llama"])
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert model.hf.config.pad_token_id == tokenizer.eos_token_id
    assert model.decoder


def test_llama_lora_two_steps_train_adapter_and_head_only(checkpoints):
    model, tokenizer = build(checkpoints["llama"])
    check_lora_training(model, tokenizer)


def test_lora_defaults_are_the_papers_7b_settings():
    config = TextConfig()
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (256, 256, 0.1)


@needs_bnb
def test_llama_4bit_lora_on_the_cpu(checkpoints):
    import bitsandbytes as bnb

    model, tokenizer = build(checkpoints["llama"], quantize="4bit")
    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers, "no layer was quantised"
    state = layers[0].weight.quant_state
    assert state.quant_type == "nf4" and state.nested  # NF4 with double quantisation
    assert layers[0].compute_dtype == torch.bfloat16
    assert not isinstance(model.head.modules_to_save["default"], bnb.nn.Linear4bit)
    assert model.hf.is_gradient_checkpointing
    check_lora_training(model, tokenizer)


@needs_bnb
def test_fsdp_qlora_storage_keeps_every_weight_in_one_dtype(checkpoints):
    """FSDP flattens one dtype only: 4-bit storage, norms, adapters and head all stay bfloat16."""
    sharded = {"quantize": "4bit", "quant_storage": "bfloat16"}
    model, tokenizer = build(checkpoints["llama"], dtype="bfloat16", **sharded)
    dtypes = {(type(p).__name__, p.dtype) for p in model.parameters()}
    assert dtypes == {("Params4bit", torch.bfloat16), ("Parameter", torch.bfloat16)}
    model.train()
    b = batch(tokenizer)
    weighted_cross_entropy(model(b)["scores"], b["target"]).backward()
    with pytest.raises(SermmError, match="needs dtype=bfloat16"):
        TextConfig(**sharded).check()


@pytest.mark.parametrize("quantize", ["none", pytest.param("4bit", marks=needs_bnb)])
def test_adapter_reloads_to_identical_predictions(checkpoints, tmp_path, quantize):
    model, tokenizer = build(checkpoints["llama"], quantize=quantize)
    b = batch(tokenizer)
    two_steps(model, b, weighted_cross_entropy)
    model.eval()
    with torch.no_grad():
        expected = model(b)
    save_file({n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad},
              tmp_path / "adapter.safetensors")
    torch.manual_seed(123)  # another LoRA initialisation, overwritten by the checkpoint
    reloaded, _ = build(checkpoints["llama"], quantize=quantize)
    missing = set(load_file(tmp_path / "adapter.safetensors")) - set(dict(reloaded.named_parameters()))
    assert not missing
    reloaded.load_state_dict(load_file(tmp_path / "adapter.safetensors"), strict=False)
    reloaded.eval()
    with torch.no_grad():
        got = reloaded(b)
    torch.testing.assert_close(got["scores"], expected["scores"], rtol=0, atol=0)
    torch.testing.assert_close(got["embedding"], expected["embedding"], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["llama", "gpt2"])  # rotary and absolute position embeddings
def test_last_token_pooling_under_left_and_right_padding(checkpoints, name):
    model, tokenizer = build(checkpoints[name])
    model.eval()
    with torch.no_grad():
        right, left = model(batch(tokenizer, side="right")), model(batch(tokenizer, side="left"))
        alone = [model(batch(tokenizer, [t], TARGETS[:1])) for t in TEXTS]
        b = batch(tokenizer)
        body = model.hf.base_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        hidden = body.last_hidden_state
    for key in ("scores", "embedding"):
        torch.testing.assert_close(left[key], right[key], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(right[key], torch.cat([a[key] for a in alone]), rtol=1e-4, atol=1e-5)
    last = b["attention_mask"].sum(1) - 1  # right padding: the last real token
    expected = hidden[torch.arange(len(TEXTS)), last]
    torch.testing.assert_close(right["embedding"], expected, rtol=1e-4, atol=1e-5)
    head = model.head.modules_to_save["default"]
    torch.testing.assert_close(right["scores"], head(right["embedding"]))


def test_roberta_full_fine_tuning_and_first_token_embedding(checkpoints):
    model, tokenizer = build(checkpoints["roberta"])
    assert not model.decoder
    assert all(p.requires_grad for p in model.parameters())
    b = batch(tokenizer)
    model.eval()
    with torch.no_grad():
        out = model(b)
        body = model.hf.roberta(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        hidden = body.last_hidden_state
    torch.testing.assert_close(out["embedding"], hidden[:, 0])
    torch.testing.assert_close(out["scores"], model.hf.classifier(hidden[:, :1]))
    before = trainable(model)
    assert np.isfinite(two_steps(model, b, weighted_cross_entropy)).all()
    after = trainable(model)
    changed = [n for n in before if not torch.equal(before[n], after[n])]
    assert "backbone.classifier.out_proj.weight" in changed
    assert "backbone.roberta.encoder.layer.0.attention.self.query.weight" in changed


def test_bert_embedding_is_the_pooler_output_its_head_reads(checkpoints):
    model, tokenizer = build(checkpoints["bert"])
    b = batch(tokenizer)
    model.eval()
    with torch.no_grad():
        out = model(b)
        pooled = model.hf.bert(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).pooler_output
    torch.testing.assert_close(out["embedding"], pooled)
    torch.testing.assert_close(out["scores"], model.hf.classifier(pooled))


@pytest.mark.parametrize("name", ["llama", "roberta"])
def test_attribute_task_three_outputs_trained_on_negative_ccc(checkpoints, name):
    model, tokenizer = build(checkpoints[name], n_out=3, task="attributes")
    targets = np.array([[0.1, 0.9, 0.4], [0.5, 0.5, 0.5], [0.9, 0.1, 0.7], [0.3, 0.2, 0.1]], dtype=np.float32)
    b = batch(tokenizer, targets=targets)
    assert b["target"].dtype == torch.float32
    losses = two_steps(model, b, neg_mean_ccc)
    assert np.isfinite(losses).all() and -1 <= losses[1] <= 1
    model.eval()
    assert model(b)["scores"].shape == (4, 3)


def test_ccc_loss_of_a_perfect_prediction_is_minus_one():
    y = torch.tensor([[1.0, 2.0, 3.0], [2.0, 1.0, 5.0], [4.0, 0.5, 1.0]])
    torch.testing.assert_close(neg_mean_ccc(y, y), torch.tensor(-1.0))
    assert neg_mean_ccc(y + 1.0, y) > -1  # a shifted prediction is penalised


def test_empty_transcript_still_gets_tokens(checkpoints):
    tokenizer = load_tokenizer(checkpoints["llama"])
    ids = tokenize(tokenizer, ["", "happy " * 50, "i am happy"], 16)
    assert rows(ids) == [[tokenizer.bos_token_id], ANY_16, tokenizer("i am happy")["input_ids"]]
    assert ids.lengths.tolist() == [1, 16, len(tokenizer("i am happy")["input_ids"])]
    bare = plain_tokenizer()  # adds no special tokens: the empty string has none of its own
    assert bare("")["input_ids"] == []
    assert rows(tokenize(bare, ["", "happy"], 16)) == [[bare.eos_token_id], bare("happy")["input_ids"]]


def test_tokenize_packs_rows_across_chunks(checkpoints, monkeypatch):
    import sermm.systems.text.data as data

    tokenizer = load_tokenizer(checkpoints["llama"])
    texts = TEXTS * 3
    whole = rows(tokenize(tokenizer, texts, 32))
    monkeypatch.setattr(data, "CHUNK", 5)
    assert rows(tokenize(tokenizer, texts, 32)) == whole == [tokenizer(t)["input_ids"] for t in texts]


def test_collate_pads_on_the_requested_side():
    items = [np.array([5, 6, 7]), np.array([8])]
    right = TextDataset(None, 0, "right").collate(items)
    left = TextDataset(None, 0, "left").collate(items)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_backbone_directory_without_tokenizer_is_one_line(checkpoints, tmp_path):
    from transformers import AutoConfig

    AutoConfig.from_pretrained(checkpoints["llama"]).save_pretrained(tmp_path)
    with pytest.raises(SermmError, match="has no tokenizer"):
        load_tokenizer(str(tmp_path))


def test_missing_backbone_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SermmError, match="no config.json"):
        load_backbone(TextConfig(backbone=str(tmp_path)), 7, None)


def test_4bit_without_bitsandbytes_is_one_line(checkpoints, monkeypatch):
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
    tokenizer = load_tokenizer(checkpoints["llama"])
    with pytest.raises(SermmError, match="bitsandbytes cannot load"):
        load_backbone(TextConfig(backbone=checkpoints["llama"], quantize="4bit"), 7, tokenizer)


def test_bad_config_values_are_refused():
    with pytest.raises(SermmError, match="quantize must be one of"):
        TextConfig(quantize="8bit").check()
    with pytest.raises(SermmError, match="trains LoRA adapters, not finetune=full"):
        TextConfig(quantize="4bit", finetune="full").check()
    TextConfig(finetune="auto").check()


def test_frozen_trains_the_head_only(checkpoints):
    model, tokenizer = build(checkpoints["roberta"], finetune="frozen")
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all(n.startswith("backbone.classifier.") for n in names)


def test_shipped_70b_config_is_the_papers():
    from pathlib import Path

    from sermm.systems.config import load_config

    examples = Path(__file__).resolve().parent.parent / "examples" / "text"
    config = load_config(TextConfig, examples / "llama2_70b_qlora.yaml")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout, config.epochs) == (16, 16, 0.05, 4)
    assert (config.quantize, config.quant_storage, config.dtype) == ("4bit", "bfloat16", "bfloat16")
    import yaml

    accelerate = yaml.safe_load((examples / "fsdp_qlora.yaml").read_text())
    assert accelerate["distributed_type"] == "FSDP" and accelerate["mixed_precision"] == "bf16"
