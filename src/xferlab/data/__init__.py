"""Data: UCR time series, the synthetic TTS speech corpus, real audio datasets, features.

Nothing here imports TensorFlow; only ``features`` imports PyTorch (the anti-transfer side).
"""
