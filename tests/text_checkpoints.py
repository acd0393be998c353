"""Tiny random text checkpoints for the tests: tokenizers trained here, model configs built in code.

Each builder saves a model and its tokenizer with ``save_pretrained`` into a directory, which the
tests then load through the production path (``sermm.systems.text.backbones``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

WORDS = (
    "i am so happy today this is terrible and sad what a great surprise hate love fear angry calm "
    "the weather was fine we lost again never thought it would end like that wonderful awful news "
    "my friend called me late at night scared of nothing joy anger disgust neutral sadness"
).split()
VOCAB_SIZE = 120
HIDDEN = 64


def bitsandbytes_reason() -> str | None:
    """Why bitsandbytes cannot be used here (the skip reason of the 4-bit tests), or None when it imports."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as exc:
        return f"bitsandbytes does not import: {exc}"
    return None


def corpus(n: int = 400) -> list[str]:
    """Deterministic pseudo-sentences of 3 to 11 words from :data:`WORDS`."""
    cycle = itertools.cycle(WORDS)
    return [" ".join(next(cycle) for _ in range(3 + (7 * i) % 9)) for i in range(n)]


def _bpe(special: list[str]) -> Tokenizer:
    """A BPE tokenizer of about :data:`VOCAB_SIZE` tokens trained on :func:`corpus`."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=special))
    return tok


def llama_tokenizer():
    """LLaMA-style: ``<s>`` prepended, EOS ``</s>``, no pad token."""
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def plain_tokenizer():
    """GPT-2-style: no special tokens added to a text, EOS ``</s>``, no pad token."""
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(["<unk>", "</s>"])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")


def roberta_tokenizer():
    """RoBERTa-style: ``<s> text </s>``, pad id 1."""
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        cls_token="<s>", sep_token="</s>", mask_token="<mask>",
    )


def bert_tokenizer():
    """BERT-style: ``[CLS] text [SEP]``, pad id 0."""
    from transformers import PreTrainedTokenizerFast

    tok = _bpe(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )


def save_llama(folder: Path) -> Path:
    """A 2-layer LLaMA (hidden 64) with a random head and its tokenizer, saved into ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = llama_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(folder)  # a base LM checkpoint, as LLaMA2 ships
    tokenizer.save_pretrained(folder)
    return folder


def save_roberta(folder: Path) -> Path:
    """A 2-layer RoBERTa (hidden 64) masked LM and its tokenizer, saved into ``folder``."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    tokenizer = roberta_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=130, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )
    RobertaForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_bert(folder: Path) -> Path:
    """A 2-layer BERT (hidden 64) base model with its pooler, as all-MiniLM-L6-v2 ships, and its tokenizer."""
    from transformers import BertConfig, BertModel

    tokenizer = bert_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=2 * HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=128, pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_gpt2(folder: Path) -> Path:
    """A 2-layer GPT-2 LM (absolute positions, hidden 64) and a tokenizer that adds no special tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = plain_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=2, n_head=4, n_positions=128,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
