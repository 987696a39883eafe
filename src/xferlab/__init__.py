"""xferlab: run, track, tune and report transfer experiments on audio models."""
__version__ = "0.1.0"
