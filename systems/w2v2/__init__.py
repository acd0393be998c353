"""Fine-tuning strategies for wav2vec 2.0 (Chen & Rudnicky, "Exploring wav2vec 2.0 fine-tuning for
improved speech emotion recognition", ICASSP 2023; code FT-w2v2-ser): ``sermm-system w2v2``.

- ``v-ft``: vanilla fine-tuning: mean of the last layer's frames → ReLU → linear;
- ``tapt``: task-adaptive pre-training first: the wav2vec 2.0 contrastive objective
  (transformers' ``Wav2Vec2ForPreTraining``) continued on the task's own training audio;
- ``p-tapt``: pseudo-label TAPT: frames clustered with k-means (scikit-learn ``MiniBatchKMeans``,
  one or more cluster counts) — the pretrained model's own, or (``kmeans_model``) those of a model
  fine-tuned on the emotion labels, as the paper does — then masked prediction of the masked
  frames' cluster ids, one head per count;

each of the last two followed by the same downstream fine-tuning as ``v-ft``.

This package's ``__init__`` imports nothing heavy (the CLI reads :data:`STRATEGIES`).
"""

#: The fine-tuning strategies.
STRATEGIES = ("v-ft", "tapt", "p-tapt")
