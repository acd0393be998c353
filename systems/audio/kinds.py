"""The audio system's choices, without importing torch (the CLI offers them as option values)."""

#: Backbone architectures: Wav2Vec2-BERT, SONAR's speech encoder, and the waveform SSL models.
KINDS = ("w2v-bert", "sonar", "wav2vec2", "xls-r", "hubert", "wavlm")
#: Which hidden states feed the pooling: the last layer's, or a learned softmax-weighted sum of all.
LAYER_MODES = ("last", "weighted")
#: What trains: LoRA adapters (base frozen), everything, or only the head.
FINETUNE_MODES = ("lora", "full", "frozen")
#: Poolings over frames (see :data:`sermm.systems.pooling.POOLINGS`, the same names).
POOLINGS = ("attentive", "mean", "attentive-kv", "attentive-stats", "subvector-mha", "double-mha")
