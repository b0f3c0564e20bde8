"""Resuming training checkpoints: longer runs and declared changes pass, any other difference is refused."""

import pytest
import torch

from mrmotion.errors import MrMotionError
from mrmotion.io.weights import resume_checkpoint, save_checkpoint


def _checkpoint(tmp_path, config):
    network = torch.nn.Linear(2, 1)
    optimiser = torch.optim.Adam(network.parameters())
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, network, optimiser, 10, 5.0, config)
    return path, network, optimiser


def test_resume_allows_more_steps_and_declared_changes_only(tmp_path):
    written = {"steps": 10, "rate": 0.1, "share": 0.0, "old": "x"}
    path, network, optimiser = _checkpoint(tmp_path, written)
    assert resume_checkpoint(path, network, optimiser, {**written, "steps": 20}) == (10, 5.0)
    longer_changed = {"steps": 20, "rate": 0.1, "share": 0.4}  # "old" retired, "share" changed
    assert resume_checkpoint(path, network, optimiser, longer_changed, ("share", "old")) == (10, 5.0)
    with pytest.raises(MrMotionError, match="different configuration"):
        resume_checkpoint(path, network, optimiser, longer_changed, ("share",))  # "old" not declared
    with pytest.raises(MrMotionError, match="different configuration"):
        resume_checkpoint(path, network, optimiser, {**written, "rate": 0.2, "steps": 20})
    with pytest.raises(MrMotionError, match="different configuration"):
        resume_checkpoint(path, network, optimiser, {**written, "steps": 5})  # shorter than the checkpoint


def test_keys_added_later_count_as_their_defaults(tmp_path):
    path, network, optimiser = _checkpoint(tmp_path, {"steps": 10, "rate": 0.1})
    newer = {"steps": 10, "rate": 0.1, "jitter": 0.05}
    assert resume_checkpoint(path, network, optimiser, newer, defaults={"jitter": 0.05}) == (10, 5.0)
    with pytest.raises(MrMotionError, match="different configuration"):
        resume_checkpoint(path, network, optimiser, {**newer, "jitter": 0.2}, defaults={"jitter": 0.05})
    with pytest.raises(MrMotionError, match="different configuration"):
        resume_checkpoint(path, network, optimiser, newer)
