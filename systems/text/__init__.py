"""Text systems: decoder LLMs (LLaMA2, 4-bit LoRA) and encoders (RoBERTa, BERT, XLM-R, MiniLM) that turn
transcripts into posterior or attribute files (``sermm-system text``)."""
