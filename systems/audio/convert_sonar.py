"""Convert a released SONAR speech encoder (fairseq2) into the directory sermm's ``sonar`` backbone reads.

Run once, in a separate environment that has ``fairseq2`` and ``sonar-space`` (they pin their own
torch) plus ``transformers`` and ``safetensors``, with sermm installed without its dependencies::

    pip install sonar-space transformers safetensors && pip install --no-deps -e /path/to/sermm
    python -m sermm.systems.audio.convert_sonar --model sonar_speech_encoder_eng --out sonar-eng \\
        --check-audio some_16k_speech.wav

The fairseq2 parameter names are mapped by :data:`RULES` (the conformer onto transformers'
``Wav2Vec2BertModel`` names, SONAR's LayerNorm and pooler onto :mod:`sermm.systems.audio.sonar`).
The pooler's BOS front-end (embedding × √d plus the position-0 encoding) is a constant; it is
computed with fairseq2 itself and stored as the pooler's query. ``--check-audio`` runs both models
on a file and stops unless their sentence embeddings agree.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch

from sermm.errors import SermmError

#: fairseq2 name pattern → sermm name (first match wins); ``None`` drops the parameter.
RULES: list[tuple[str, str | None]] = [
    (r"^encoder_frontend\.post_extract_layer_norm\.", "encoder.feature_projection.layer_norm."),
    (r"^encoder_frontend\.model_dim_proj\.", "encoder.feature_projection.projection."),
    (r"^encoder\.layers\.(\d+)\.conv_layer_norm\.", r"encoder.encoder.layers.\1.conv_module.layer_norm."),
    (r"^encoder\.layers\.(\d+)\.conv\.", r"encoder.encoder.layers.\1.conv_module."),
    (r"^encoder\.layers\.(\d+)\.ffn([12])_layer_norm\.", r"encoder.encoder.layers.\1.ffn\2_layer_norm."),
    (
        r"^encoder\.layers\.(\d+)\.ffn([12])\.inner_proj\.",
        r"encoder.encoder.layers.\1.ffn\2.intermediate_dense.",
    ),
    (r"^encoder\.layers\.(\d+)\.ffn([12])\.output_proj\.", r"encoder.encoder.layers.\1.ffn\2.output_dense."),
    (r"^encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.encoder.layers.\1.self_attn_layer_norm."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.q_proj\.", r"encoder.encoder.layers.\1.self_attn.linear_q."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.k_proj\.", r"encoder.encoder.layers.\1.self_attn.linear_k."),
    (r"^encoder\.layers\.(\d+)\.self_attn\.v_proj\.", r"encoder.encoder.layers.\1.self_attn.linear_v."),
    (
        r"^encoder\.layers\.(\d+)\.self_attn\.output_proj\.",
        r"encoder.encoder.layers.\1.self_attn.linear_out.",
    ),
    (
        r"^encoder\.layers\.(\d+)\.self_attn\.sdpa\.r_proj\.",
        r"encoder.encoder.layers.\1.self_attn.linear_pos.",
    ),
    (r"^encoder\.layers\.(\d+)\.self_attn\.sdpa\.u_bias$", r"encoder.encoder.layers.\1.self_attn.pos_bias_u"),
    (r"^encoder\.layers\.(\d+)\.self_attn\.sdpa\.v_bias$", r"encoder.encoder.layers.\1.self_attn.pos_bias_v"),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.encoder.layers.\1.final_layer_norm."),
    (r"^layer_norm\.", "layer_norm."),
    (r"^encoder_pooler\.decoder\.layers\.", "pooler.layers."),
    (r"^encoder_pooler\.projection_out\.", "pooler.projection_out."),
    (r"^encoder_pooler\.decoder_frontend\.embed\.weight$", None),  # replaced by the computed query
]


def rename(name: str) -> str | None:
    """The sermm name of fairseq2 parameter ``name`` (None: dropped); unknown names are an error."""
    for pattern, target in RULES:
        if re.search(pattern, name):
            return None if target is None else re.sub(pattern, target, name)
    raise SermmError(f"fairseq2 parameter {name!r} has no rule in convert_sonar.RULES")


def convert_state_dict(state: dict[str, torch.Tensor], query: torch.Tensor, target: dict[str, torch.Tensor]):
    """fairseq2 SONAR ``state`` (and the pooler ``query``) as a state dict with the names and shapes of
    ``target`` (a :class:`SonarSpeechEncoder`'s state dict); every target entry must be filled."""
    out: dict[str, torch.Tensor] = {"pooler.query": query.detach().reshape(-1).clone()}
    for name, tensor in state.items():
        new = rename(name)
        if new is None:
            continue
        if new not in target:
            raise SermmError(f"fairseq2 parameter {name!r} maps to {new!r}, which the sermm model lacks")
        if tensor.numel() != target[new].numel():
            raise SermmError(f"{name}: {tuple(tensor.shape)} does not fit {new} {tuple(target[new].shape)}")
        out[new] = tensor.detach().reshape(target[new].shape).to(target[new].dtype).clone()
    missing = sorted(set(target) - set(out))
    if missing:
        raise SermmError(f"no fairseq2 parameter for {', '.join(missing[:5])} ({len(missing)} missing)")
    return out


def sermm_config(fs2_config, state: dict[str, torch.Tensor]):
    """The :class:`SonarSpeechConfig` of a fairseq2 ``SonarSpeechEncoderConfig`` (sizes from ``state``)."""
    from sermm.systems.audio.sonar import SonarSpeechConfig

    enc = fs2_config.w2v2_encoder_config
    proj = state["encoder_frontend.model_dim_proj.weight"]
    n_layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
    n_dec = 1 + max(
        int(m.group(1)) for k in state if (m := re.match(r"encoder_pooler\.decoder\.layers\.(\d+)\.", k))
    )
    encoder = dict(
        hidden_size=int(proj.shape[0]),
        feature_projection_input_dim=int(proj.shape[1]),
        num_hidden_layers=n_layers,
        num_attention_heads=int(enc.num_encoder_attn_heads),
        intermediate_size=int(state["encoder.layers.0.ffn1.inner_proj.weight"].shape[0]),
        conv_depthwise_kernel_size=int(enc.depthwise_conv_kernel_size),
        position_embeddings_type="relative",
        hidden_act="swish",
        layer_norm_eps=1e-5,
        add_adapter=False,
        mask_time_prob=0.0,
        layerdrop=0.0,
    )
    return SonarSpeechConfig(
        encoder=encoder,
        conv_norm="batch_norm" if any(".conv.batch_norm." in k for k in state) else "layer_norm",
        num_decoder_layers=n_dec,
        num_decoder_heads=int(fs2_config.num_decoder_attn_heads),
        decoder_ffn_dim=int(state["encoder_pooler.decoder.layers.0.ffn.inner_proj.weight"].shape[0]),
        dropout=float(fs2_config.dropout_p),
        final_dropout=float(fs2_config.final_dropout_p),
    )


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - needs fairseq2 and the real weights
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="sonar_speech_encoder_eng", help="fairseq2 asset name of the encoder"
    )
    parser.add_argument("--out", required=True, type=Path, help="directory to write")
    parser.add_argument("--check-audio", type=Path, help="a 16 kHz speech file to compare both models on")
    args = parser.parse_args(argv)

    from sonar.models.sonar_speech.loader import load_sonar_speech_config, load_sonar_speech_model
    from transformers import SeamlessM4TFeatureExtractor

    from sermm.systems.audio.sonar import SonarSpeechEncoder

    fs2 = load_sonar_speech_model(args.model, device=torch.device("cpu"), dtype=torch.float32).eval()
    state = fs2.state_dict()
    config = sermm_config(load_sonar_speech_config(args.model), state)
    model = SonarSpeechEncoder(config).eval()
    pooler = fs2.encoder_pooler
    with torch.no_grad():
        bos = pooler._get_pooling_tokens(1, torch.device("cpu"))
        query, _ = pooler.decoder_frontend(bos, None)
    model.load_state_dict(convert_state_dict(state, query, model.state_dict()), strict=True)
    model.save_pretrained(args.out)
    SeamlessM4TFeatureExtractor(padding_value=1.0).save_pretrained(args.out)
    print(f"wrote {args.out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    if args.check_audio:
        check(fs2, model, args.check_audio)


def check(fs2, model, audio: Path) -> None:  # pragma: no cover - needs fairseq2
    """Stop unless fairseq2's and sermm's sentence embeddings of ``audio`` agree."""
    from fairseq2.data.audio import WaveformToFbankConverter
    from fairseq2.models.sequence import SequenceBatch
    from transformers import SeamlessM4TFeatureExtractor

    from sermm.systems.audio.io import SAMPLE_RATE, read_audio

    wave = torch.from_numpy(read_audio(audio))
    fbank = WaveformToFbankConverter(
        num_mel_bins=80, waveform_scale=2**15, channel_last=True, standardize=True
    )({"waveform": wave[:, None], "sample_rate": SAMPLE_RATE, "format": -1})["fbank"]
    with torch.no_grad():
        reference = fs2(SequenceBatch(fbank[None], None)).sentence_embeddings
        inputs = SeamlessM4TFeatureExtractor(padding_value=1.0)(
            wave.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt"
        )
        ours = model(inputs["input_features"], inputs["attention_mask"])
    gap = float((reference - ours).abs().max())
    print(f"largest difference of the sentence embeddings: {gap:.2e}")
    if not torch.allclose(reference, ours, rtol=1e-3, atol=1e-3):
        raise SystemExit("the converted encoder does not reproduce fairseq2's embedding")


if __name__ == "__main__":  # pragma: no cover
    main()
