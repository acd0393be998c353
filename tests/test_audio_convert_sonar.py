"""The SONAR conversion: fairseq2 parameter names (as SONAR's own loader writes them) onto sermm's model."""

from types import SimpleNamespace

import pytest
import torch
from audio_tiny import W2V_BERT, one_thread  # noqa: F401 (one_thread: autouse fixture)

from sermm.errors import SermmError
from sermm.systems.audio.convert_sonar import convert_state_dict, rename, sermm_config
from sermm.systems.audio.sonar import SonarSpeechConfig, SonarSpeechEncoder

#: Per conformer layer: fairseq2 name (the targets of sonar/models/sonar_speech/loader.py) → sermm name.
ENCODER_LAYER = {
    "conv.batch_norm.{p}": "conv_module.batch_norm.{p}",
    "conv.depthwise_conv.weight": "conv_module.depthwise_conv.weight",
    "conv_layer_norm.{p}": "conv_module.layer_norm.{p}",
    "conv.pointwise_conv1.weight": "conv_module.pointwise_conv1.weight",
    "conv.pointwise_conv2.weight": "conv_module.pointwise_conv2.weight",
    "ffn1_layer_norm.{p}": "ffn1_layer_norm.{p}",
    "ffn1.inner_proj.{p}": "ffn1.intermediate_dense.{p}",
    "ffn1.output_proj.{p}": "ffn1.output_dense.{p}",
    "ffn2_layer_norm.{p}": "ffn2_layer_norm.{p}",
    "ffn2.inner_proj.{p}": "ffn2.intermediate_dense.{p}",
    "ffn2.output_proj.{p}": "ffn2.output_dense.{p}",
    "self_attn_layer_norm.{p}": "self_attn_layer_norm.{p}",
    "self_attn.q_proj.{p}": "self_attn.linear_q.{p}",
    "self_attn.k_proj.{p}": "self_attn.linear_k.{p}",
    "self_attn.v_proj.{p}": "self_attn.linear_v.{p}",
    "self_attn.output_proj.{p}": "self_attn.linear_out.{p}",
    "self_attn.sdpa.r_proj.weight": "self_attn.linear_pos.weight",
    "self_attn.sdpa.u_bias": "self_attn.pos_bias_u",
    "self_attn.sdpa.v_bias": "self_attn.pos_bias_v",
    "layer_norm.{p}": "final_layer_norm.{p}",
}
DECODER_LAYER = [
    f"{block}.{proj}.{{p}}"
    for block in ("self_attn", "encoder_decoder_attn")
    for proj in ("q_proj", "k_proj", "v_proj", "output_proj")
] + [
    f"{n}.{{p}}"
    for n in (
        "self_attn_layer_norm",
        "encoder_decoder_attn_layer_norm",
        "ffn.inner_proj",
        "ffn.output_proj",
        "ffn_layer_norm",
    )
]
BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def tiny_sonar():
    torch.manual_seed(0)
    encoder = {**W2V_BERT, "position_embeddings_type": "relative"}
    config = SonarSpeechConfig(encoder=encoder, num_decoder_layers=2, num_decoder_heads=2, decoder_ffn_dim=64)
    model = SonarSpeechEncoder(config).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2)
    return model


def fairseq2_state(model):
    """The model's parameters under the names fairseq2's SONAR speech encoder gives them."""
    ours = model.state_dict()
    out = {
        "encoder_frontend.post_extract_layer_norm.weight": ours[
            "encoder.feature_projection.layer_norm.weight"
        ],
        "encoder_frontend.post_extract_layer_norm.bias": ours["encoder.feature_projection.layer_norm.bias"],
        "encoder_frontend.model_dim_proj.weight": ours["encoder.feature_projection.projection.weight"],
        "encoder_frontend.model_dim_proj.bias": ours["encoder.feature_projection.projection.bias"],
        "layer_norm.weight": ours["layer_norm.weight"],
        "layer_norm.bias": ours["layer_norm.bias"],
        "encoder_pooler.projection_out.weight": ours["pooler.projection_out.weight"],
        "encoder_pooler.decoder_frontend.embed.weight": torch.randn(32, 32),
    }
    for i in range(model.encoder.config.num_hidden_layers):
        for fs2, mine in ENCODER_LAYER.items():
            for p in BN if "batch_norm" in fs2 else ("weight", "bias"):
                key = f"encoder.encoder.layers.{i}.{mine.format(p=p)}"
                if key in ours:
                    out[f"encoder.layers.{i}.{fs2.format(p=p)}"] = ours[key]
    for i in range(len(model.pooler.layers)):
        for name in DECODER_LAYER:
            for p in ("weight", "bias"):
                out[f"encoder_pooler.decoder.layers.{i}.{name.format(p=p)}"] = ours[
                    f"pooler.layers.{i}.{name.format(p=p)}"
                ]
    return out


def test_fairseq2_names_convert_onto_every_parameter_and_reproduce_the_model():
    model = tiny_sonar()
    state = fairseq2_state(model)
    fresh = SonarSpeechEncoder(model.config).eval()
    converted = convert_state_dict(state, model.pooler.query.detach(), fresh.state_dict())
    fresh.load_state_dict(converted, strict=True)
    x, mask = torch.randn(2, 30, 160), torch.ones(2, 30, dtype=torch.long)
    mask[1, 18:] = 0
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, mask), model(x, mask), rtol=0, atol=0)


def test_unknown_or_missing_parameters_stop_the_conversion():
    model = tiny_sonar()
    state = fairseq2_state(model)
    with pytest.raises(SermmError, match="has no rule"):
        rename("encoder.masker.temporal_mask_embed")
    del state["encoder.layers.1.ffn2.output_proj.bias"]
    with pytest.raises(
        SermmError, match="no fairseq2 parameter for encoder.encoder.layers.1.ffn2.output_dense.bias"
    ):
        convert_state_dict(state, model.pooler.query, model.state_dict())


def test_config_sizes_come_from_the_checkpoint():
    model = tiny_sonar()
    fs2_config = SimpleNamespace(
        w2v2_encoder_config=SimpleNamespace(num_encoder_attn_heads=2, depthwise_conv_kernel_size=3),
        num_decoder_attn_heads=2,
        dropout_p=0.1,
        final_dropout_p=0.1,
    )
    config = sermm_config(fs2_config, fairseq2_state(model))
    assert (
        config.conv_norm == "batch_norm" and config.num_decoder_layers == 2 and config.decoder_ffn_dim == 64
    )
    assert config.encoder["hidden_size"] == 32 and config.encoder["num_hidden_layers"] == 2
    SonarSpeechEncoder(config).load_state_dict(model.state_dict(), strict=True)
