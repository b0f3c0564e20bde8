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


def weights_metadata(path: str | Path) -> dict:
    """What a weights file says about itself: every JSON metadata entry (``config`` and ``summary`` always, empty if
    absent; others such as the pose region network's ``layout``), plus ``parameters`` and ``bytes``."""
    from safetensors import safe_open

    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        count = sum(handle.get_tensor(key).numel() for key in handle.keys())
    return {
        **{key: json.loads(value) for key, value in metadata.items()},
        "config": json.loads(metadata.get("config", "{}")),
        "summary": json.loads(metadata.get("summary", "{}")),
        "parameters": count,
        "bytes": path.stat().st_size,
    }


def save_checkpoint(
    path: Path, network: torch.nn.Module, optimiser: torch.optim.Optimizer, step: int, seconds: float, config: dict
) -> None:
    """Write a training checkpoint (network, optimiser, step, elapsed seconds, configuration) atomically."""
    state = {"network": network.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
             "seconds": seconds, "config": config}  # fmt: skip
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def resume_checkpoint(
    path: Path,
    network: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    config: dict,
    may_change: tuple[str, ...] = (),
    defaults: dict | None = None,
) -> tuple[int, float]:
    """Load a checkpoint into ``network`` and ``optimiser``; returns (step, elapsed seconds).

    A run may be extended (``config["steps"]`` larger than the checkpoint's step; a cosine schedule then continues
    over the new length), and the keys in ``may_change`` (e.g. a data mix) may differ from the checkpoint's; any
    other difference in the configuration is refused. ``defaults``: values of keys added to the configuration after
    the checkpoint was written (the behaviour it was trained with).
    """
    state = torch.load(path, weights_only=False)
    free = {"steps", *may_change}
    stored = {**(defaults or {}), **state["config"]}
    fixed = {key: value for key, value in stored.items() if key not in free}
    if fixed != {key: value for key, value in config.items() if key not in free} or config["steps"] < state["step"]:
        raise MrMotionError(f"{path}: written by a different configuration; remove it or match {state['config']}")
    network.load_state_dict(state["network"])
    optimiser.load_state_dict(state["optimiser"])
    return int(state["step"]), float(state["seconds"])


def truncate_log(path: Path, step: int) -> None:
    """Drop the rows of a CSV training log (first column: step) written after ``step`` (a run stopped between two
    checkpoints and resumed from the earlier one)."""
    rows = path.read_text().splitlines()
    kept = [rows[0]] + [row for row in rows[1:] if int(row.split(",")[0]) <= step]
    path.write_text("\n".join(kept) + "\n")
