"""Fine-tuning strategies for wav2vec 2.0 (Chen & Rudnicky, "Exploring wav2vec 2.0 fine-tuning for
improved speech emotion recognition", ICASSP 2023; code FT-w2v2-ser): ``sermm-system w2v2``.

- ``v-ft``: vanilla fine-tuning: mean of the last layer's frames → ReLU → linear;
- ``tapt``: task-adaptive pre-training first: the wav2vec 2.0 contrastive objective
  (transformers' ``Wav2Vec2ForPreTraining``) continued on the task's own training audio;
- ``p-tapt``: pseudo-label TAPT: the frames of the pretrained model clustered with k-means
  (scikit-learn ``MiniBatchKMeans``), then masked prediction of the cluster ids of masked frames;

each of the last two followed by the same downstream fine-tuning as ``v-ft``.

This package's ``__init__`` imports nothing heavy (the CLI reads :data:`STRATEGIES`).
"""

#: The fine-tuning strategies.
STRATEGIES = ("v-ft", "tapt", "p-tapt")
