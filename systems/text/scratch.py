"""A randomly initialised BERT with a tokenizer trained on the given texts, saved as a checkpoint
directory: for benchmarks on a CPU and quick experiments where no pretrained text encoder exists
offline. It loads through the same ``from_pretrained`` path as a real checkpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_random_bert(
    directory: str | os.PathLike,
    texts: Sequence[str],
    *,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    vocab_size: int = 400,
    max_position_embeddings: int = 256,
    seed: int = 0,
) -> Path:
    """Write a random BERT base model and a BPE tokenizer (``[CLS] text [SEP]``, pad id 0) trained
    on ``texts`` into ``directory``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=0,
    )
    out = Path(directory)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
