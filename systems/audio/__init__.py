"""The audio systems: pretrained speech backbones (Wav2Vec2-BERT, SONAR, wav2vec2/XLS-R, HuBERT, WavLM)
with attentive pooling, an embedding layer and a categorical or attribute output (``sermm-system audio``).

Pieces, each reusable by the other recipes: :mod:`.io` (reading audio), :mod:`.augment` (noise,
reverberation, speed), :mod:`.backbones` (loading and fine-tuning modes), :mod:`.sonar` (the SONAR
speech encoder in plain PyTorch), :mod:`.model` (the utterance model), :mod:`.data` (chunks, windows
and batches).
"""
