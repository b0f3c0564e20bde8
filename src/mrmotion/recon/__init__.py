"""Reconstruction with known motion: motion-aware SENSE operator and conjugate-gradient solver."""
