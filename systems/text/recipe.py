"""The text system as a recipe for the shared training loop and prediction writer (``sermm-system text``)."""

from __future__ import annotations

import numpy as np
from torch import nn

from sermm.errors import SermmError
from sermm.systems.manifest import Inventory, Manifest
from sermm.systems.text.backbones import (
    decoder_backbone,
    load_backbone,
    load_hf_config,
    load_tokenizer,
    quantization_config,
)
from sermm.systems.text.config import TextConfig
from sermm.systems.text.data import TextDataset, TokenIds, tokenize
from sermm.systems.text.model import TextModel


class TextRecipe:
    """Transcripts → a sequence-classification backbone → class logits or three attributes."""

    system = "text"
    need = "text"
    config_class = TextConfig

    def __init__(self) -> None:
        self._tokenizers: dict[str, object] = {}
        self._tokens: dict[tuple[int, int], tuple[Manifest, TokenIds]] = {}

    def tokenizer(self, config: TextConfig):
        """The backbone's tokenizer (loaded once per backbone)."""
        if config.backbone not in self._tokenizers:
            self._tokenizers[config.backbone] = load_tokenizer(config.backbone)
        return self._tokenizers[config.backbone]

    def check_config(self, config: TextConfig) -> None:
        """Fail early, before a run directory exists: the tokenizer, the config and 4-bit support load."""
        self.tokenizer(config)
        load_hf_config(config.backbone)
        if config.quantize == "4bit":
            quantization_config(config)

    def build_model(self, config: TextConfig, inventory: Inventory) -> nn.Module:
        decoder = decoder_backbone(config, load_hf_config(config.backbone))
        backbone = load_backbone(config, inventory.n_outputs, self.tokenizer(config))
        return TextModel(backbone, decoder=decoder)

    def token_ids(self, manifest: Manifest, config: TextConfig) -> TokenIds:
        """The manifest's token ids, tokenised once per manifest (lengths and dataset both need them)."""
        key = (id(manifest), config.max_length)
        if key not in self._tokens or self._tokens[key][0] is not manifest:
            texts = [str(t) for t in manifest.texts]
            self._tokens[key] = (manifest, tokenize(self.tokenizer(config), texts, config.max_length))
        return self._tokens[key][1]

    def dataset(self, manifest: Manifest, config: TextConfig, *, train: bool) -> TextDataset:
        tokenizer = self.tokenizer(config)
        decoder = decoder_backbone(config, load_hf_config(config.backbone))
        side = tokenizer.padding_side if decoder else "right"
        return TextDataset(self.token_ids(manifest, config), tokenizer.pad_token_id, side)

    def lengths(self, manifest: Manifest, config: TextConfig, *, train: bool) -> np.ndarray:
        return self.token_ids(manifest, config).lengths.astype(np.float64)

    def validate(self, manifest: Manifest, *, skip_bad: bool) -> Manifest:
        """Every row has a transcript (an empty one is kept: the model sees an empty string)."""
        if manifest.texts is None:
            raise SermmError(f"{manifest.source}: no 'text' column (a text manifest is id,text,label)")
        return manifest
