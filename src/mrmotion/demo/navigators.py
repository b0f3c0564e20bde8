"""The demo's pose step: navigators of the moving head, their poses, and slices that follow the anatomy.

At a few moments of the session's true head motion a fast 3-D navigator of the MNI152 T1 head is rendered (3-mm
voxels, slices up to 4.5 mm thick, bias, bands and noise: :func:`mrmotion.pose.synth.scout_volume`), its head pose
is estimated by ``mrmotion pose`` (a folder of volumes → one transform JSON each), and an axial stack is prescribed
in the head's anatomical frame: once from the first navigator (no loop), and again from each navigator whose pose is
reliable (the prospective loop). Both are scored against the true anatomical plane at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mrmotion.commands.pose import pose_folder  # noqa: E402
from mrmotion.demo.session import SyntheticSession  # noqa: E402
from mrmotion.errors import MrMotionError  # noqa: E402
from mrmotion.geometry.parameters import rotation_angle, rotation_distance  # noqa: E402
from mrmotion.geometry.transforms import invert_rigid  # noqa: E402
from mrmotion.io.nifti import write_image  # noqa: E402
from mrmotion.report.motion_plot import save_figure  # noqa: E402

Step = Callable[[str], None]

#: navigators spread evenly over the session (the moment of the largest head rotation is added)
NAVIGATORS = 6
#: navigator voxel size (mm) and field of view (× the brain's size), as the adult pose benchmark's scouts
NAVIGATOR_MM = 3.0
NAVIGATOR_FOV = (1.4, 1.6)
#: the axial stack prescribed in the head frame: slices, spacing (mm), field of view (mm), thickness (mm)
STACK = (24, 4.0, (220.0, 220.0), 3.0)


def head_motion(session: SyntheticSession) -> tuple[np.ndarray, np.ndarray]:
    """The session's head motion since its first pose, ``(T, 4, 4)`` (scanner frame), and how far the head is
    turned from that pose at each time, ``(T,)`` degrees."""
    motion = session.scanner_from_head @ invert_rigid(session.scanner_from_head[0])
    return motion, np.degrees(rotation_angle(motion))


def navigator_indices(session: SyntheticSession, count: int = NAVIGATORS) -> np.ndarray:
    """Indices into the session's times: ``count`` spread evenly from the start to the end, and the moment the head
    is turned furthest from its first pose."""
    if count < 2:
        raise MrMotionError(f"need at least 2 navigators (a reference and one more), got {count}")
    _, turned = head_motion(session)
    spread = np.linspace(0, len(session.times_s) - 1, count).round().astype(int)
    return np.unique(np.append(spread, int(np.argmax(turned))))


def run_navigator_demo(
    output_dir: Path, session: SyntheticSession, step: Step, seed: int = 0, count: int = NAVIGATORS
) -> dict:
    """Render ``count`` navigators (:func:`navigator_indices`) into ``output_dir/navigators``, estimate their poses
    into ``output_dir/poses`` and score the anatomical slice planes with and without following them; returns the
    numbers and the files made."""
    from mrmotion.pose import synth
    from mrmotion.pose.prospective import RELIABLE_CONFIDENCE, anatomical_slices, plane_error, pose_to_follow

    output_dir = Path(output_dir)
    head = synth.adult_t1_subject()  # the MNI152 T1 in its own position: scanner_from_head at the session's start
    motion, turned = head_motion(session)
    indices = navigator_indices(session, count)
    rng = np.random.default_rng(seed)
    navigators = output_dir / "navigators"
    navigators.mkdir(parents=True, exist_ok=True)
    truths = []
    step(f"rendering {len(indices)} navigators of the moving MNI152 head (3-mm voxels, degraded)")
    for number, index in enumerate(indices):
        truth = motion[index] @ head.scanner_from_head
        data, grid = synth.scout_volume(head, truth, rng, NAVIGATOR_MM, NAVIGATOR_FOV, clutter=False)
        write_image(navigators / f"navigator_{number:02d}.nii.gz", data, grid)
        truths.append(truth)
    step("estimating the head pose of each navigator (mrmotion pose navigators -o poses)")
    results = pose_folder(navigators, output_dir / "poses")
    count, spacing, fov, thickness = STACK
    middle = (count - 1) // 2
    offset = (middle - (count - 1) / 2) * spacing
    first = results[0].estimate
    if first is None:
        raise MrMotionError(f"the first navigator has no pose: {results[0].error}")
    fixed = anatomical_slices(first.scanner_from_head, "axial", count, spacing, fov, thickness)[middle]
    followed = first.scanner_from_head
    rows = []
    for index, truth, result in zip(indices, truths, results, strict=True):
        estimate = result.estimate
        row = {
            "time_s": float(session.times_s[index]),
            "true_rotation_from_start_deg": float(turned[index]),
        }
        if estimate is None:  # the loop keeps the last reliable pose
            row.update(
                estimated_rotation_from_start_deg=None, confidence=0.0, rotation_error_deg=None, centre_error_mm=None
            )
        else:
            pose = estimate.scanner_from_head
            followed = pose_to_follow(followed, pose, estimate.confidence)
            row.update(
                estimated_rotation_from_start_deg=float(np.degrees(rotation_distance(first.scanner_from_head, pose))),
                confidence=float(estimate.confidence),
                rotation_error_deg=float(np.degrees(rotation_distance(pose, truth))),
                centre_error_mm=float(np.linalg.norm(pose[:3, 3] - truth[:3, 3])),
            )
        loop = anatomical_slices(followed, "axial", count, spacing, fov, thickness)[middle]
        row["no_loop_deg_mm"] = plane_error(fixed, truth, "axial", offset)
        row["loop_deg_mm"] = plane_error(loop, truth, "axial", offset)
        rows.append(row)
    plot_navigators(session.times_s, turned, rows, output_dir / "navigators.png")
    return {
        "navigators": rows,
        "reliable_confidence": RELIABLE_CONFIDENCE,
        "files": ["navigators/", "poses/", "navigators.png"],
    }


def plot_navigators(times_s: np.ndarray, turned_deg: np.ndarray, rows: list[dict], path: Path) -> Path:
    """Head rotation from the start (true, ``turned_deg`` at ``times_s``, and from the first navigator's pose to each
    one's) and the middle axial slice's angle from the true anatomical plane, with and without the loop."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, constrained_layout=True)
    top.plot(times_s, turned_deg, color="0.4", label="true head rotation from the start")
    times = [row["time_s"] for row in rows]
    top.scatter(times, [row["true_rotation_from_start_deg"] for row in rows], color="0.4", zorder=3, s=12)
    seen = [row for row in rows if row["estimated_rotation_from_start_deg"] is not None]
    top.scatter(
        [row["time_s"] for row in seen],
        [row["estimated_rotation_from_start_deg"] for row in seen],
        color="C0",
        marker="x",
        zorder=4,
        label="as the navigators' poses say (from the first)",
    )
    top.set_ylabel("degrees")
    top.legend(loc="upper left")
    bottom.plot(times, [row["no_loop_deg_mm"][0] for row in rows], "o-", color="C3", label="slices fixed at the start")
    bottom.plot(times, [row["loop_deg_mm"][0] for row in rows], "o-", color="C2", label="slices following the pose")
    bottom.set_ylabel("slice plane vs anatomy (deg)")
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper left")
    return save_figure(figure, path)
