"""Learned motion correction: hierarchical VQ-VAE, autoregressive prior over its codes, guided inference."""
