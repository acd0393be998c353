"""DMHA: BSC-UPC's multimodal early-fusion system (Odyssey 2024 emotion challenge, 3rd place), as a
recipe of the shared training loop and prediction writer (``sermm-system dmha``).

::

    waveform ─► frozen wav2vec2 / XLS-R / HuBERT / WavLM ─► all hidden states ─► learned softmax mix ┐
    transcript ─► frozen BERT ─► last layer (─► linear to the speech size if the sizes differ) ───────┤
                                                                      concatenated along time (T = Ts + Tt)
    ─► standard multi-head attention (4 heads, T outputs) │ sub-vector multi-head attention (4 outputs)
    ─► single-query attention pooling ─► 4 × [dense 512, LayerNorm, GELU, dropout 0.1] ─► softmax

Both backbones are frozen, so their features can be computed once: with ``feature_cache: DIR`` the
recipe extracts every utterance's speech states (all layers, whole utterance, no augmentation) and
its text states into ``DIR`` (:mod:`sermm.systems.feature_cache`) before the first epoch, and
reads them from there afterwards. Training crops (``crop_s``, 5.5 s, shorter utterances repeated)
are then cut from the cached frames. Augmentation changes the waveform, which a cache cannot hold:
when it is on (speed factors or noise/RIR corpora with ``augment_prob`` > 0) the training batches'
speech is extracted on the fly from cropped, augmented waveforms (the backbone runs each step, in
inference mode) while dev, test and the text still come from the cache.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from sermm.errors import SermmError, first_line
from sermm.systems.audio.augment import Augmenter, AugmentSettings, add_noise, reverberate, speed_perturb
from sermm.systems.audio.backbones import LayerMix, conv_output_lengths, detect_kind
from sermm.systems.audio.data import AudioItems
from sermm.systems.audio.io import SAMPLE_RATE
from sermm.systems.audio.recipe import AudioRecipe
from sermm.systems.config import SystemConfig
from sermm.systems.feature_cache import FeatureCache, backbone_identity, file_digest, text_digest
from sermm.systems.heads import TASKS
from sermm.systems.losses import focal_loss, neg_mean_ccc, weighted_cross_entropy
from sermm.systems.manifest import Inventory, Manifest
from sermm.systems.pooling import AttentivePooling, MultiHeadSelfAttention, SubVectorMultiHeadAttention

#: Speech backbones DMHA takes (waveform SSL models with a hidden state per layer).
SPEECH_KINDS = ("wav2vec2", "xls-r", "hubert", "wavlm")
FIRST_ATTENTION = ("mha", "subvector")
LOSSES = ("wce", "focal")
NORMALIZE = ("train", "utterance")
#: Training utterances read to estimate the waveform mean and SD (a random subset of larger sets).
STATS_UTTERANCES = 2000


@dataclass
class DMHAConfig(SystemConfig):
    """A DMHA run. Defaults follow the paper where it gives them (frozen features, 4 heads, 4 dense
    layers of 512 with LayerNorm, GELU and dropout 0.1, weighted CE, 5.5 s crops, augmentation on
    half of the utterances, AdamW, the learning rate halved after 5 epochs without dev macro-F1
    gain, early stopping); the learning rate, batch size and patience are sermm's choices."""

    finetune: str = "frozen"
    #: The text encoder (BERT-like; Hub id or local directory); its last layer is used.
    text_backbone: str = ""
    #: First attention layer: standard multi-head self-attention ("mha", T outputs) or sub-vector
    #: multi-head attention ("subvector", one vector per head).
    first_attention: str = "mha"
    heads: int = 4
    dense_layers: int = 4
    dense_dim: int = 512
    dropout: float = 0.1
    #: "wce": cross-entropy, inverse-frequency weighted with class_weighted; "focal": focal loss.
    loss: str = "wce"
    focal_gamma: float = 2.0
    class_weighted: bool = True
    #: Training crop length; shorter utterances are repeated up to it.
    crop_s: float = 5.5
    #: "train": waveforms normalised with the training set's mean and SD (computed before training
    #: unless given); "utterance": each waveform to zero mean and unit variance.
    normalize: str = "train"
    wave_mean: float | None = None
    wave_std: float | None = None
    #: Augmentation: each training utterance, with probability augment_prob, gets one of speed
    #: perturbation (speeds), reverberation (rir corpus) or noise (noise corpus, SNR range).
    noise: str = ""
    rir: str = ""
    snr_min_db: float = 0.0
    snr_max_db: float = 15.0
    speeds: list[float] = field(default_factory=lambda: [0.9, 1.1])
    augment_prob: float = 0.5
    #: Folder of the frozen-feature cache; empty: the backbones run on every batch.
    feature_cache: str = ""
    #: Tokens kept per transcript.
    max_text_tokens: int = 128
    #: Utterances per backbone call when extracting features.
    extract_batch: int = 8
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 1e-2
    warmup_ratio: float = 0.0
    schedule: str = "constant"
    batch_size: int = 32
    effective_batch: int = 32
    epochs: int = 50
    plateau_patience: int = 5
    patience: int = 15

    def check(self) -> None:
        super().check()
        choices = (
            ("first_attention", FIRST_ATTENTION),
            ("loss", LOSSES),
            ("normalize", NORMALIZE),
        )
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                raise SermmError(
                    f"config: {key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}"
                )
        if self.finetune != "frozen":
            raise SermmError("config: DMHA uses frozen backbones (finetune: frozen)")
        if self.kind and self.kind not in SPEECH_KINDS:
            raise SermmError(f"config: kind must be one of {', '.join(SPEECH_KINDS)}, got {self.kind!r}")
        for key in ("heads", "dense_layers", "dense_dim", "max_text_tokens", "extract_batch"):
            if getattr(self, key) < 1:
                raise SermmError(f"config: {key} must be at least 1, got {getattr(self, key)}")
        if not 0 <= self.dropout < 1 or not 0 <= self.augment_prob <= 1:
            raise SermmError("config: dropout must lie in [0, 1) and augment_prob in [0, 1]")
        if self.crop_s <= 0 or self.focal_gamma < 0:
            raise SermmError("config: crop_s must be positive and focal_gamma not negative")
        if self.snr_min_db > self.snr_max_db:
            raise SermmError(
                f"config: snr_min_db ({self.snr_min_db}) is above snr_max_db ({self.snr_max_db})"
            )
        if any(f <= 0 for f in self.speeds):
            raise SermmError(f"config: speeds must be positive factors, got {self.speeds}")
        if self.wave_std is not None and self.wave_std <= 0:
            raise SermmError(f"config: wave_std must be positive, got {self.wave_std}")

    def augment(self) -> AugmentSettings | None:
        """The augmentation corpora and speeds, or None when nothing would be augmented."""
        if not (self.speeds or self.noise or self.rir) or self.augment_prob == 0:
            return None
        return AugmentSettings(
            noise=self.noise or None,
            rir=self.rir or None,
            snr_min_db=self.snr_min_db,
            snr_max_db=self.snr_max_db,
            speeds=tuple(self.speeds),
            batch_prob=self.augment_prob,
        )


# --------------------------------------------------------------------------- model


class DenseBlock(nn.Module):
    """Dense → LayerNorm → GELU → dropout."""

    def __init__(self, in_dim: int, dim: int, dropout: float) -> None:
        super().__init__()
        self.dense, self.norm, self.drop = nn.Linear(in_dim, dim), nn.LayerNorm(dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(nn.functional.gelu(self.norm(self.dense(x))))


class DMHAModel(nn.Module):
    """The DMHA head over frozen features: ``batch`` holds ``speech`` (B, L+1, Ts, Es) states of every
    layer with ``speech_mask``, and ``text`` (B, Tt, Et) with ``text_mask``.

    ``embedding`` is the last dense layer's output (for LDA/PLDA fusion); ``scores`` the logits.
    """

    def __init__(
        self,
        speech_dim: int,
        n_states: int,
        text_dim: int,
        n_out: int,
        *,
        task: str = "categorical",
        first_attention: str = "mha",
        heads: int = 4,
        dense_layers: int = 4,
        dense_dim: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if task not in TASKS or first_attention not in FIRST_ATTENTION:
            raise SermmError(f"DMHA: unknown task {task!r} or first attention {first_attention!r}")
        if speech_dim % heads:
            raise SermmError(f"DMHA: {heads} heads do not divide the speech feature size {speech_dim}")
        self.first_attention = first_attention
        self.layer_mix = LayerMix(n_states)
        self.text_proj = nn.Linear(text_dim, speech_dim) if text_dim != speech_dim else nn.Identity()
        if first_attention == "mha":
            self.attention = MultiHeadSelfAttention(speech_dim, heads)
            self.pooling = AttentivePooling(speech_dim)
            pooled = speech_dim
        else:
            self.attention = SubVectorMultiHeadAttention(speech_dim, heads)
            self.pooling = AttentivePooling(speech_dim // heads)
            pooled = speech_dim // heads
        dims = [pooled] + [dense_dim] * dense_layers
        self.dense = nn.Sequential(
            *(DenseBlock(a, b, dropout) for a, b in zip(dims[:-1], dims[1:], strict=True))
        )
        self.output = nn.Linear(dense_dim, n_out)

    def sequence(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused (B, Ts + Tt, E) sequence and its mask: mixed speech layers, then the text."""
        weight = self.layer_mix.weights
        speech = batch["speech"].to(weight.dtype)
        mixed = self.layer_mix(list(speech.unbind(1)))
        text = self.text_proj(batch["text"].to(weight.dtype))
        h = torch.cat([mixed, text], dim=1)
        mask = torch.cat([batch["speech_mask"].bool(), batch["text_mask"].bool()], dim=1)
        return h, mask

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        h, mask = self.sequence(batch)
        z = self.attention(h, mask)
        pooled = self.pooling(z, mask) if self.first_attention == "mha" else self.pooling(z)
        embedding = self.dense(pooled)
        return {"scores": self.output(embedding), "embedding": embedding}

    @torch.no_grad()
    def attention_maps(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The attention weights of a batch, for plots: ``first`` (B, H, T) (standard MHA: the weight
        each position receives, averaged over the real queries), ``pool`` (B, T) or (B, H), ``mask``."""
        h, mask = self.sequence(batch)
        if self.first_attention == "mha":
            w = self.attention.weights(h, mask)  # (B, H, Tq, Tk)
            received = w.sum(2) / mask.sum(1).clamp(min=1)[:, None, None]
            pool = self.pooling.weights(self.attention(h, mask), mask)
            return {"first": received, "pool": pool, "mask": mask}
        return {
            "first": self.attention.weights(h, mask),
            "pool": self.pooling.weights(self.attention(h, mask)),
            "mask": mask,
        }


# --------------------------------------------------------------------------- frozen features


def _device() -> torch.device:
    """This process's device (its GPU under ``accelerate launch``), where the frozen backbones run."""
    from accelerate import PartialState

    return PartialState().device


class FrozenFeatures:
    """The frozen speech and text backbones, in eval mode on this process's device.

    :meth:`speech` maps waveforms to every layer's states and a frame mask; :meth:`text` maps
    transcripts to the text encoder's last layer and a token mask.
    """

    def __init__(self, config: DMHAConfig) -> None:
        from sermm.systems.audio.backbones import load_backbone
        from sermm.systems.text.backbones import _quiet_load_report, load_hf_config, load_tokenizer

        self.config = config
        self.device = _device()
        self.speech_backbone = load_backbone(
            config.backbone, kind=config.kind or None, layers="last", finetune="frozen", layerdrop=0.0
        )
        self.speech_backbone.model.to(self.device).eval()
        self.tokenizer = load_tokenizer(config.text_backbone)
        load_hf_config(config.text_backbone)
        from transformers import AutoModel

        try:
            with _quiet_load_report():
                self.text_model = AutoModel.from_pretrained(config.text_backbone)
        except (OSError, ValueError, KeyError) as exc:
            raise SermmError(
                f"{config.text_backbone}: cannot load the text encoder ({first_line(exc)})"
            ) from None
        self.text_model.requires_grad_(False)
        self.text_model.to(self.device).eval()

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        """The waveform normalised as configured: training mean and SD, or per utterance."""
        x = np.asarray(wave, dtype=np.float32)
        if self.config.normalize == "train":
            return (x - self.config.wave_mean) / self.config.wave_std
        return (x - x.mean()) / np.sqrt(x.var() + 1e-7)

    @torch.no_grad()
    def speech(self, waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L+1, T, E) hidden states of every layer (the CNN's projection first) and the (B, T) mask."""
        waves = [self.prepare(w) for w in waves]
        longest = max(len(w) for w in waves)
        values = torch.zeros(len(waves), longest)
        attention = torch.zeros(len(waves), longest, dtype=torch.long)
        for i, w in enumerate(waves):
            values[i, : len(w)] = torch.from_numpy(w)
            attention[i, : len(w)] = 1
        values, attention = values.to(self.device), attention.to(self.device)
        out = self.speech_backbone.model(
            input_values=values, attention_mask=attention, output_hidden_states=True
        )
        states = torch.stack(out.hidden_states, dim=1)
        mask = self.speech_backbone.frame_mask(attention, states.shape[2], adapter=False)
        return states.float() * mask[:, None, :, None], mask  # padding zeroed, as in cached batches

    @torch.no_grad()
    def text(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, E) last-layer states of the transcripts and the (B, T) token mask."""
        encoded = self.tokenizer(
            [str(t) for t in texts],
            truncation=True,
            max_length=self.config.max_text_tokens,
            padding=True,
            return_tensors="pt",
        )
        ids, mask = encoded["input_ids"].to(self.device), encoded["attention_mask"].to(self.device)
        states = self.text_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return states.float() * mask[:, :, None], mask.bool()


def unpad(states: torch.Tensor, mask: torch.Tensor, time_dim: int) -> list[torch.Tensor]:
    """Each row's states without its padding (``time_dim``: the time axis of a row)."""
    lengths = mask.sum(1).tolist()
    return [s.narrow(time_dim, 0, int(n)).cpu() for s, n in zip(states, lengths, strict=True)]


def pad_rows(rows: Sequence[torch.Tensor], time_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack rows of different lengths along ``time_dim`` (0-padded) with a (B, T) bool mask."""
    longest = max(r.shape[time_dim] for r in rows)
    shape = list(rows[0].shape)
    shape[time_dim] = longest
    out = torch.zeros(len(rows), *shape, dtype=rows[0].dtype)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        n = r.shape[time_dim]
        out[i].narrow(time_dim, 0, n).copy_(r)
        mask[i, :n] = True
    return out, mask


def repeat_to(x: np.ndarray, n: int) -> np.ndarray:
    """``x`` repeated (tiled) up to ``n`` samples, or cut to ``n``: repetition padding."""
    if len(x) >= n:
        return x[:n]
    return np.tile(x, math.ceil(n / max(1, len(x))))[:n]


def crop_frames(states: torch.Tensor, n: int, rng: np.random.Generator) -> torch.Tensor:
    """A random window of ``n`` frames (axis 1) of cached (L+1, T, E) states, repeated when shorter."""
    t = states.shape[1]
    if t >= n:
        start = int(rng.integers(t - n + 1))
        return states[:, start : start + n]
    return states.repeat(1, math.ceil(n / t), 1)[:, :n]


# --------------------------------------------------------------------------- data


class DMHADataset(Dataset):
    """Utterances of a manifest: audio and transcript per row; :meth:`collate` makes a batch of
    ``speech``/``speech_mask``/``text``/``text_mask`` from the cache or from the frozen backbones.

    Training: one random ``crop_s`` crop per utterance (repeated when shorter), from the cached
    frames, or, with augmentation, from the waveform (one of speed, reverberation, noise with
    probability ``augment_prob``) through the backbone. The draws come from (seed, epoch, rows).
    """

    def __init__(
        self,
        items: AudioItems,
        texts: Sequence[str],
        config: DMHAConfig,
        *,
        train: bool,
        features: Any,
        speech_cache: FeatureCache | None,
        text_cache: FeatureCache | None,
        speech_keys: list[str] | None,
        text_keys: list[str] | None,
        crop_frames: int,
    ) -> None:
        self.items, self.texts, self.config, self.train = items, list(texts), config, train
        self._features = features  # a callable giving FrozenFeatures, loaded only when needed
        self.speech_cache, self.text_cache = speech_cache, text_cache
        self.speech_keys, self.text_keys = speech_keys, text_keys
        self.crop_frames = crop_frames
        settings = config.augment() if train else None
        self.augmenter = Augmenter(settings) if settings is not None else None
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> int:
        return int(i)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def online_speech(self) -> bool:
        """Whether speech features come from the backbone in this dataset's batches (no cache, or
        augmented training)."""
        return self.speech_cache is None or self.augmenter is not None

    def collate(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, self.epoch, *rows.tolist()]))
        if self.online_speech:
            speech, speech_mask = self.features().speech(self._waves(rows, rng))
            speech, speech_mask = speech.cpu(), speech_mask.cpu()
        else:
            cached = [self.speech_cache.load(self.speech_keys[i]) for i in rows]
            if self.train:
                cached = [crop_frames(s, self.crop_frames, rng) for s in cached]
            speech, speech_mask = pad_rows(cached, 1)
        if self.text_cache is not None:
            text, text_mask = pad_rows([self.text_cache.load(self.text_keys[i]) for i in rows], 0)
        else:
            text, text_mask = self.features().text([self.texts[i] for i in rows])
            text, text_mask = text.cpu(), text_mask.cpu()
        return {"speech": speech, "speech_mask": speech_mask, "text": text, "text_mask": text_mask}

    def features(self) -> FrozenFeatures:
        return self._features()

    def _waves(self, rows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Whole utterances (prediction), or training crops, augmented with one of the three."""
        if not self.train:
            return [self.items.read(int(i)) for i in rows]
        n = int(round(self.config.crop_s * SAMPLE_RATE))
        waves = []
        for i in rows:
            kind = self._draw_augmentation(rng)
            speed = self.augmenter.draw_speed(rng) if kind == "speed" else 1.0
            span = self.config.crop_s * speed
            offset = float(rng.uniform(0, max(0.0, self.items.infos[i].duration - span)))
            wave = self.items.read(int(i), offset, span)
            if kind == "speed" and speed != 1.0:
                wave = speed_perturb(wave, speed)
            elif kind == "reverb":
                wave = reverberate(wave, self.augmenter.rir_for(rng))
            elif kind == "noise":
                s = self.augmenter.settings
                snr = float(rng.uniform(s.snr_min_db, s.snr_max_db))
                wave = add_noise(wave, self.augmenter.noise_for(len(wave), rng), snr)
            waves.append(repeat_to(wave, n))
        return waves

    def _draw_augmentation(self, rng: np.random.Generator) -> str | None:
        """None, or one of the available augmentations (with probability ``augment_prob``)."""
        if self.augmenter is None or rng.random() >= self.config.augment_prob:
            return None
        kinds = [
            k
            for k, available in (
                ("speed", bool(self.augmenter.settings.speeds)),
                ("reverb", bool(self.augmenter.rir_files)),
                ("noise", bool(self.augmenter.noise_files)),
            )
            if available
        ]
        return kinds[int(rng.integers(len(kinds)))] if kinds else None


# --------------------------------------------------------------------------- recipe


class DMHARecipe:
    """Frozen speech + BERT features, fused along time, attention, pooling, dense layers, softmax."""

    system = "dmha"
    need = "path+text"
    config_class = DMHAConfig

    def __init__(self, quiet: bool = False) -> None:
        self._audio = AudioRecipe()  # audio headers, reading, --skip-bad
        self._frozen: dict[tuple, FrozenFeatures] = {}
        self.quiet = quiet

    # configuration -----------------------------------------------------------------

    def check_config(self, config: DMHAConfig) -> None:
        """Before anything is written: both backbones' configs and the text tokenizer load, the speech
        backbone is a waveform SSL model, and the augmentation corpora hold audio."""
        from sermm.systems.text.backbones import load_hf_config, load_tokenizer

        kind = detect_kind(config.backbone, config.kind or None)
        if kind not in SPEECH_KINDS:
            raise SermmError(
                f"{config.backbone}: a {kind} backbone; DMHA takes {', '.join(SPEECH_KINDS)} (hidden "
                "states of every transformer layer from waveforms)"
            )
        if not config.text_backbone:
            raise SermmError("no text backbone: pass --text-backbone ID_OR_DIR (a BERT-like encoder)")
        load_tokenizer(config.text_backbone)
        load_hf_config(config.text_backbone)
        settings = config.augment()
        if settings is not None:
            Augmenter(settings)

    def prepare(self, config: DMHAConfig, train: Manifest) -> DMHAConfig:
        """Fill in the training waveforms' mean and SD (``normalize: train``) unless given: over all
        samples of the training utterances (a random subset of :data:`STATS_UTTERANCES` when more)."""
        if config.normalize != "train" or (config.wave_mean is not None and config.wave_std is not None):
            return config
        items = self._audio._items(train)
        rows = np.arange(len(items))
        if len(rows) > STATS_UTTERANCES:
            rows = np.sort(np.random.default_rng(config.seed).choice(rows, STATS_UTTERANCES, replace=False))
        total = total_sq = count = 0.0
        for i in rows:
            x = items.read(int(i)).astype(np.float64)
            total, total_sq, count = total + x.sum(), total_sq + (x * x).sum(), count + len(x)
        mean = total / count
        std = math.sqrt(max(total_sq / count - mean * mean, 1e-12))
        return replace(config, wave_mean=float(round(mean, 8)), wave_std=float(round(std, 8)))

    def _speech_shape(self, config: DMHAConfig) -> tuple[int, int, Any]:
        from transformers import AutoConfig

        try:
            hf = AutoConfig.from_pretrained(config.backbone)
        except (OSError, ValueError, KeyError) as exc:
            raise SermmError(
                f"{config.backbone}: cannot read the backbone's config.json ({first_line(exc)})"
            ) from None
        return int(hf.hidden_size), int(hf.num_hidden_layers) + 1, hf

    def build_model(self, config: DMHAConfig, inventory: Inventory) -> nn.Module:
        from sermm.systems.text.backbones import load_hf_config

        speech_dim, n_states, _ = self._speech_shape(config)
        text_dim = int(load_hf_config(config.text_backbone).hidden_size)
        return DMHAModel(
            speech_dim,
            n_states,
            text_dim,
            inventory.n_outputs,
            task=config.task,
            first_attention=config.first_attention,
            heads=config.heads,
            dense_layers=config.dense_layers,
            dense_dim=config.dense_dim,
            dropout=config.dropout,
        )

    def loss(
        self,
        out: dict[str, torch.Tensor],
        batch: dict[str, torch.Tensor],
        config: DMHAConfig,
        weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """Weighted cross-entropy or focal loss (γ = ``focal_gamma``); −mean CCC for attributes."""
        if config.task == "attributes":
            return neg_mean_ccc(out["scores"], batch["target"])
        if config.loss == "focal":
            return focal_loss(out["scores"], batch["target"], weight, gamma=config.focal_gamma)
        return weighted_cross_entropy(out["scores"], batch["target"], weight)

    # data ----------------------------------------------------------------------------

    def validate(self, manifest: Manifest, *, skip_bad: bool) -> Manifest:
        """Every row has a transcript column and readable audio (see the audio recipe's ``validate``)."""
        if manifest.texts is None:
            raise SermmError(f"{manifest.source}: no 'text' column (a DMHA manifest is id,path,text,label)")
        return self._audio.validate(manifest, skip_bad=skip_bad)

    def frozen(self, config: DMHAConfig) -> FrozenFeatures:
        """The frozen backbones of ``config`` (loaded once)."""
        key = (
            config.backbone,
            config.kind,
            config.text_backbone,
            config.normalize,
            config.wave_mean,
            config.wave_std,
            config.max_text_tokens,
        )
        if key not in self._frozen:
            self._frozen[key] = FrozenFeatures(config)
        return self._frozen[key]

    def caches(self, config: DMHAConfig) -> tuple[FeatureCache, FeatureCache] | None:
        """The speech and text caches of ``config`` (None without ``feature_cache``)."""
        if not config.feature_cache:
            return None
        speech = {
            "what": "speech states, every layer",
            "backbone": backbone_identity(config.backbone),
            "kind": detect_kind(config.backbone, config.kind or None),
            "normalize": config.normalize,
            "wave_mean": config.wave_mean if config.normalize == "train" else None,
            "wave_std": config.wave_std if config.normalize == "train" else None,
        }
        text = {
            "what": "text states, last layer",
            "backbone": backbone_identity(config.text_backbone),
            "max_tokens": config.max_text_tokens,
        }
        return FeatureCache(config.feature_cache, speech), FeatureCache(config.feature_cache, text)

    def _fill(
        self, config: DMHAConfig, items: AudioItems, texts: list[str], caches, keys, *, speech_too: bool
    ) -> None:
        """Extract what the caches lack (each process its share; all wait for the rest); the speech
        only with ``speech_too`` (augmented training extracts its speech on the fly)."""
        from accelerate import PartialState

        state = PartialState()
        speech_cache, text_cache = caches
        speech_keys, text_keys = keys
        share = {"rank": state.process_index, "world": state.num_processes, "quiet": self.quiet}
        order = np.argsort(items.durations, kind="stable")

        def speech(rows: np.ndarray) -> list[torch.Tensor]:
            states, mask = self.frozen(config).speech([items.read(int(i)) for i in rows])
            return unpad(states, mask, 1)

        def text(rows: np.ndarray) -> list[torch.Tensor]:
            states, mask = self.frozen(config).text([texts[int(i)] for i in rows])
            return unpad(states, mask, 0)

        done = 0
        if speech_too:
            done += speech_cache.fill(
                speech_keys,
                speech,
                order=order,
                batch_size=config.extract_batch,
                desc="speech features",
                **share,
            )
        done += text_cache.fill(
            text_keys, text, batch_size=config.extract_batch, desc="text features", **share
        )
        if done and not self.quiet:
            print(f"feature cache {config.feature_cache}: extracted {done} item(s)", file=sys.stderr)
        state.wait_for_everyone()

    def dataset(self, manifest: Manifest, config: DMHAConfig, *, train: bool) -> DMHADataset:
        items = self._audio._items(manifest)
        texts = [str(t) for t in manifest.texts]
        caches = self.caches(config)
        keys: tuple[list[str] | None, list[str] | None] = (None, None)
        if caches is not None:
            keys = ([file_digest(p) for p in items.paths], [text_digest(t) for t in texts])
            augmented = train and config.augment() is not None
            self._fill(config, items, texts, caches, keys, speech_too=not augmented)
        _, _, hf = self._speech_shape(config)
        frames = int(
            conv_output_lengths(torch.tensor([int(round(config.crop_s * SAMPLE_RATE))]), hf, adapter=False)[0]
        )
        return DMHADataset(
            items,
            texts,
            config,
            train=train,
            features=lambda: self.frozen(config),
            speech_cache=None if caches is None else caches[0],
            text_cache=None if caches is None else caches[1],
            speech_keys=keys[0],
            text_keys=keys[1],
            crop_frames=max(1, frames),
        )

    def lengths(self, manifest: Manifest, config: DMHAConfig, *, train: bool) -> np.ndarray:
        """Seconds of audio per row (in training every crop is ``crop_s``)."""
        durations = self._audio._items(manifest).durations
        return np.full(len(durations), config.crop_s) if train else durations


# --------------------------------------------------------------------------- attention plots


def plot_attention(
    run_dir: str, manifest: Manifest, n: int, folder: str | Path, *, quiet: bool = True
) -> list[Path]:
    """PNG heat maps of the attention weights of the first ``n`` utterances of ``manifest`` under the
    run's best model: the first attention layer per head over the fused speech | text positions, and
    the pooling's weights. One file per utterance, ``folder/<id>.png``."""
    from sermm.plots import _figure, _save
    from sermm.systems.prediction import load_best_model
    from sermm.systems.rundir import RunDir

    recipe = DMHARecipe(quiet=quiet)
    run = RunDir.open(run_dir, system=recipe.system)
    config = run.config(DMHAConfig)
    model = load_best_model(recipe, run, config).eval()
    part = manifest.take(np.arange(min(n, len(manifest))))
    dataset = recipe.dataset(part, config, train=False)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, len(part), 8):
        rows = list(range(start, min(start + 8, len(part))))
        batch = dataset.collate(rows)
        maps = model.attention_maps(batch)
        for j, row in enumerate(rows):
            keep = maps["mask"][j].numpy()
            positions = np.flatnonzero(keep)
            boundary = int(batch["speech_mask"][j].sum())
            first = maps["first"][j][:, positions].numpy()
            pool = maps["pool"][j].numpy()
            pool = pool[positions][None, :] if config.first_attention == "mha" else pool[:, None]
            fig = _figure(max(6.0, min(14.0, 0.03 * len(positions) + 4)), 4.2)
            top, bottom = fig.subplots(
                2, 1, height_ratios=[3, 1] if config.first_attention == "mha" else [3, 2]
            )
            image = top.imshow(first, aspect="auto", cmap="viridis", interpolation="nearest")
            top.axvline(boundary - 0.5, color="white", linewidth=1.5)
            top.set_ylabel("head")
            top.set_yticks(range(first.shape[0]))
            what = "weight received (mean over queries)" if config.first_attention == "mha" else "weight"
            top.set_title(
                f"{part.ids[row]}: first attention ({config.first_attention}), {what}; "
                f"speech | text at position {boundary}",
                fontsize=9,
            )
            fig.colorbar(image, ax=top)
            image = bottom.imshow(pool, aspect="auto", cmap="magma", interpolation="nearest")
            if config.first_attention == "mha":
                bottom.axvline(boundary - 0.5, color="white", linewidth=1.5)
                bottom.set_xlabel(f"position (speech frames 0..{boundary - 1}, then text tokens)")
                bottom.set_yticks([])
            else:
                bottom.set_ylabel("head")
                bottom.set_xticks([])
            bottom.set_title("attention pooling weights", fontsize=9)
            fig.colorbar(image, ax=bottom)
            written.append(_save(fig, folder / f"{_safe(str(part.ids[row]))}.png"))
    return written


def _safe(name: str) -> str:
    """A file name from an utterance id (path separators and odd characters replaced)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "utterance"


__all__ = [
    "DMHAConfig",
    "DMHAModel",
    "DMHARecipe",
    "FrozenFeatures",
    "plot_attention",
]
