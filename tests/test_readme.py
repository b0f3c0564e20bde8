"""The README's Python examples run as written (on the MNI152 template that nilearn ships)."""

import re
from pathlib import Path

import nibabel
import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_every_python_block_imports():
    blocks = python_blocks()
    assert len(blocks) >= 3
    for block in blocks:
        imports = "\n".join(line for line in block.splitlines() if line.startswith(("from ", "import ")))
        exec(compile(imports, "README.md", "exec"), {})


def test_the_pose_and_correction_example_runs(tmp_path, monkeypatch):
    from nilearn.datasets import load_mni152_template

    (block,) = [b for b in python_blocks() if "estimate_pose" in b]
    head = load_mni152_template(resolution=2)
    nibabel.save(head, tmp_path / "scout.nii.gz")
    slice_ = np.asarray(head.get_fdata(), dtype=np.float32)[:, :, 45]
    nibabel.save(nibabel.Nifti1Image(slice_, head.affine), tmp_path / "corrupted.nii.gz")
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(block, "README.md", "exec"), names)
    pose, corrected = names["pose"], names["corrected"]
    assert pose.scanner_from_head.shape == (4, 4) and 0.0 <= pose.confidence <= 1.0
    # the MNI152 template is in its canonical orientation: the head frame's axes are the scanner's (LPS)
    assert np.degrees(np.arccos((np.trace(pose.scanner_from_head[:3, :3]) - 1) / 2)) < 15.0
    assert corrected.shape == slice_.shape and np.isfinite(corrected).all()
