"""The built-in demo: a synthetic tracked session and the chain run on it."""
