"""Voice2Series (V2S) reprogramming in TensorFlow/Keras (kapre mel front end).

Modules (import them directly; this package imports nothing heavy on its own):

- ``frontend``  kapre mel spectrogram + per-utterance normalisation layer
- ``models``    source acoustic models (``attrnn``, ``attrnn_unet``, ``tcn`` and ``*_tiny``)
- ``segments``  segment replication arithmetic (numpy only)
- ``mapping``   label mappings h: many-to-one random, one-to-one, frequency (numpy only)
- ``reprogram`` Keras layers: SegmentPad, the trainable program theta, LabelMap, FrozenModel,
                ``build_v2s`` and the TF_a baseline ``build_tf_a``
- ``fitting``   shared epoch loop pieces: epoch callback, best-weights restore, test metrics
- ``train``     ``train_v2s`` with the authors' inverse-time-decay Adam schedule
- ``pretrain``  ``pretrain_source`` for the source AM on (n, 16000) speech arrays
- ``analysis``  sliced Wasserstein distance, Grad-CAM, attention weights, t-SNE inputs
- ``figures``   matplotlib (Agg) PNG builders for the paper's Figures 3, 4 and 5

Training code never imports mlflow or optuna: it reports through ``on_epoch`` callbacks.
"""
