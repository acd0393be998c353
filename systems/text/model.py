"""The text system model: a sequence-classification backbone behind the systems' model contract.

``forward(batch)`` returns ``scores`` (class logits, or arousal/valence/dominance) and ``embedding``,
the pooled hidden state that feeds the classification head: for decoder LLMs the last real token's
final hidden state, for encoders what the model's own first-token head reads (BERT: its pooler output).
"""

from __future__ import annotations

import torch
from torch import nn

from sermm.systems.pooling import last_token
from sermm.systems.text.backbones import HEAD_MODULES, is_decoder


def _hf_model(backbone: nn.Module) -> nn.Module:
    """The Hugging Face model inside a peft wrapper (LoRA layers injected), or the model itself."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


class TextModel(nn.Module):
    """A transcript classifier or attribute regressor over a (possibly peft-wrapped) HF backbone."""

    def __init__(self, backbone: nn.Module, *, decoder: bool | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        hf = _hf_model(backbone)
        self.decoder = is_decoder(hf.config) if decoder is None else decoder
        names = [name for name in HEAD_MODULES if hasattr(hf, name)]
        if not names:
            raise ValueError(f"{type(hf).__name__} has none of the head modules {', '.join(HEAD_MODULES)}")
        self._head_name = names[0]
        self._pooled: torch.Tensor | None = None
        if not self.decoder:
            self.head.register_forward_pre_hook(self._keep_head_input)

    @property
    def hf(self) -> nn.Module:
        """The Hugging Face sequence-classification model (LoRA layers injected when wrapped)."""
        return _hf_model(self.backbone)

    @property
    def head(self) -> nn.Module:
        """The classification head (peft's trainable copy of it under LoRA)."""
        return getattr(self.hf, self._head_name)

    def _keep_head_input(self, module: nn.Module, args: tuple) -> None:
        """Forward pre-hook on an encoder's head: keep the vector it reads (first token of a sequence)."""
        x = args[0]
        self._pooled = x[:, 0] if x.dim() == 3 else x

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.decoder:
            # positions count real tokens only, so that a left-padded row reads as its unpadded self
            # also under absolute position embeddings (GPT-2; rotary ones do not see the shift)
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
            body = self.hf.base_model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
            )
            pooled = last_token(body.last_hidden_state, mask)
            weight = next(self.head.parameters())
            scores = self.head(pooled.to(weight.dtype))
            return {"scores": scores.float(), "embedding": pooled.float()}
        scores = self.hf(input_ids=ids, attention_mask=mask).logits
        pooled, self._pooled = self._pooled, None
        return {"scores": scores.float(), "embedding": pooled.float()}
