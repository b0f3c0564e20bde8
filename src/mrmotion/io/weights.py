"""Network weights as safetensors files with their training configuration (JSON) in the metadata."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from mrmotion.errors import MrMotionError


def write_weights(path: str | Path, network: torch.nn.Module, metadata: dict[str, dict]) -> None:
    """Write the network's state as safetensors; each metadata value is stored as JSON. Atomic (temp + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().contiguous() for k, v in network.state_dict().items()}
    temporary = path.with_name(path.name + ".tmp")
    save_file(tensors, str(temporary), metadata={key: json.dumps(value) for key, value in metadata.items()})
    temporary.replace(path)


def read_weights(path: str | Path, build: Callable[[dict], torch.nn.Module], what: str, train_hint: str):
    """``(network, config)``: ``build(config)`` makes the network from the stored configuration, then its weights
    are loaded and it is put in evaluation mode. Missing or unusable files give a clear :class:`MrMotionError`."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MrMotionError(f"{path}: {what} weights not found (train them with `{train_hint}`)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        config = json.loads(metadata["config"])
        network = build(config)
        network.load_state_dict(load_file(str(path)))
    except MrMotionError:
        raise
    except Exception as error:
        raise MrMotionError(f"{path}: not usable {what} weights ({type(error).__name__}: {error})") from None
    network.eval()
    return network, config
