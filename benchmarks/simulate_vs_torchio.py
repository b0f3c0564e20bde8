"""Motion simulation benchmark: mrmotion ``simulate`` vs TorchIO ``tio.Motion``, and reconstruction time.

Prints one table (rich) and writes it to ``benchmarks/results/simulate_vs_torchio.txt`` (``…_quick.txt`` with
``--quick``) with the date and the machine on top. Every measurement runs in its own fresh Python process, so
the wall time and the peak RSS (``ru_maxrss`` of that process: imports, input and the step itself) belong to
that step alone; a process whose RSS passes a cap or that runs past a time limit is stopped and reported as such.

Input: the 1 mm MNI152 template of nilearn (197×233×189, no download; ``--quick``: the 2 mm one, 99×117×95),
float32, the same array and affine for both simulators.

The same motion for both (how the comparison is made fair)
------------------------------------------------------------
* TorchIO (1.2.1, read in ``torchio/transforms/augmentation/intensity/random_motion.py``) builds, per movement,
  a SimpleITK ``Euler3DTransform`` with ``SetRotation(θx, θy, θz)`` (ITK's default ZXY order: ``R = Rz Rx Ry``)
  and ``SetTranslation(t)`` in LPS mm. It sets the image centre as the rotation centre, but then round-trips the
  transform through ``GetMatrix()``/``GetTranslation()`` into a new transform without a centre, so the rotation
  is in fact about the **LPS world origin** (checked here on every run: TorchIO's own transforms are compared with
  the conversion below). That origin is our isocentre, so the conversion is exact: the resampled copy is
  ``I_T(x) = I(T x)`` with ``T = [R t]``, i.e. the object moved by ``A = T⁻¹``, which is our MotionTrajectory
  state (scanner LPS about the isocentre). NIfTI RAS → LPS is ``diag(−1, −1, 1)``, as TorchIO's ``nib_to_sitk``.
* "S motion states" = S distinct poses = TorchIO's unmoved image plus S − 1 movements. Parameters are drawn
  like ``RandomMotion`` (seeded numpy): angles and translations uniform in ±5° / ±5 mm, times ``j/S`` ± 30 % of a
  step. TorchIO fills k-space blocks along the **last array axis** (voxel axis 2, superior–inferior here), block
  j being planes ``[⌊n·t_j−1⌋, ⌊n·t_j⌋)``, and swaps the unmoved spectrum into the block holding the centre
  plane. Ours acquires a linear 3-D Cartesian scan (kz = voxel axis 2 as the outer loop, ky inner, 10 ms per
  line); each state starts with the first line of the kz plane where TorchIO's block starts, with the same swap.
  So both sample every k-space point under the same pose. Blocks TorchIO leaves empty (more states than planes,
  e.g. 256 states on 189 planes) are invisible: our trajectory drops them (it needs increasing times), TorchIO
  still resamples and FFTs them. The table shows the visible count.
* "one state per phase-encode line" (ours only): every (ky, kz) line its own pose, a continuous motion: the
  Euler angles and translations of the 32-state case interpolated linearly in time between the block centres
  (same amplitudes, no jumps). TorchIO cannot express it (one pose per kz plane at most) and is not run.
* Single coil: TorchIO has no coils; ours runs with ``coils=None`` (one uniform coil, complex k-space), and ours
  with 8 loop coils fixed in the scanner (``coil_model="exact"``, two rings, as ``mrmotion simulate`` builds
  them) as an extra column: the real use case, no TorchIO counterpart.
* Same output: TorchIO's time is its whole ``transform(subject)`` (subject copy, resampling, FFTs, k-space
  pasting, inverse FFT, ``.real``). Ours is ``simulate()`` (k-space) **plus** the inverse FFT to an image
  (8 coils: per-coil inverse FFT and SENSE-1 combination); both parts are shown. Building our sampling pattern
  and motion trajectory (the inputs) is not timed. Precision as the CLI: complex64 and NUFFT eps 1e-4 for the
  1 mm volume (complex128, 1e-4 at 2 mm); TorchIO works in float32/complex64.
* Agreement: correlation of the corrupted magnitude images (ours 1 coil vs TorchIO; ours 8 coils vs TorchIO)
  and the NRMSE of each against the clean image (shows the motion is not negligible).

Known differences (not fair, either way)
----------------------------------------
* Physics: TorchIO moves a voxel image by linear interpolation (blurs every moved copy, fills outside with the
  image minimum) and keeps ``.real`` of the result; ours evaluates the exact Fourier transform of the voxel image
  at rotated k-space positions (NUFFT) and keeps complex data. Correlation stays below 1 for that reason.
* TorchIO pays for states that are invisible (256 on 189 planes); ours skips them.
* TorchIO's time is a transform on an in-memory tensor; ours includes computing the sample positions of a
  full acquisition order (which TorchIO has none of).
* Ours encodes only the box holding the image's non-zero voxels (``object_support``: 47 % of the MNI volume,
  whose background is exactly zero). Exact, since zero voxels add nothing to k-space; it shrinks the NUFFTs'
  FFTs and the coil weightings (8 coils, 8 states: 33 s → 25 s), less so one coil, whose time is mostly per
  sample. A real scan has no exactly zero background and gets no such saving.
* Every run is a fresh process, as a command-line run is; runs under 20 s are repeated, the best of 3 processes
  kept, for TorchIO and ours alike. (Until 2026-11-24 the repeats ran in one process: warm. Ours now plans its
  FFTs with FFTW_MEASURE on large grids with many NUFFT calls, ``nufft.fft_planning``, a cost paid once per
  process, which a warm repeat would have hidden.) No other warm-up; other users of the machine may add noise.

Reconstruction
--------------
* 3-D: the k-space of the 8-state, 8-coil exact simulation above, reconstructed with the known motion by
  ``sense_reconstruction`` as ``mrmotion recon`` runs it: the exact coil model, warm-started (10 CG iterations
  of the moving-coil model, then ``EXACT_ITERATIONS`` of the exact model), on the box where the data show the
  object (``object_box``; zero outside); regularisation 1e-4, the coil maps stored by ``simulate`` as
  ``GridCoilMaps``, the same eps / dtype choice as ``mrmotion recon``. Time from the k-space in memory to the
  image (box, coil-map interpolator, operator set-up, power iterations, CG). NRMSE of |x| against the clean image
  inside the head (> 5 % of the maximum). The same k-space is also reconstructed with ``coil_model="moving"``
  only (coils assumed to move with the head, 10 iterations): faster, and its NRMSE shows the model error.
* The 2-state, 8-state and one-state-per-line simulations are also run with ``coil_model="moving"``, for its time
  and its growth with the number of states; one state per line also with the exact model capped at 64 and 8 coil
  poses (``CAPPED_CLUSTERS``, ``mrmotion simulate --coil-clusters``; default 16 since 2026-11-25, 64 before): their
  coil errors are measured by ``benchmarks/coil_cluster_error.py``.
* 2-D: the real 7-coil slice (256×216), Walsh maps, 8-shot interleaved sampling with 8 random in-plane poses
  (±4°, ±4 mm), as ``tests/recon/test_known_motion.py``; 15 CG iterations; NRMSE against the motion-free
  reconstruction.

Run: ``python benchmarks/simulate_vs_torchio.py`` (full, 12–20 minutes on 2 cores) or ``--quick`` (2 mm,
2/8/32 states, a few minutes). ``--profile JOB`` runs one job under cProfile, e.g.
``--profile '{"job": "ours", "states": "line", "coils": 8, "resolution": 1}'``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import json
import os
import platform
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.spatial.transform import Rotation

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SLICE = Path(__file__).resolve().parents[2] / "shared" / "data" / "brain_slice_7coil" / "brain_slice_7coil.npz"
LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
MAX_DEG, MAX_MM, SEED = 5.0, 5.0, 0
#: Caps on the exact coil model's coil poses (``mrmotion simulate --coil-clusters``) also timed for one state per line.
CAPPED_CLUSTERS = (64, 8)
TR_S = 0.01
#: Exact-model CG iterations after the moving model's at 1 and 2 mm (``mrmotion recon``'s default above 1 M voxels).
EXACT_ITERATIONS = 1


# ----------------------------------------------------------------------------------------------- shared inputs
def template(resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The nilearn MNI152 template: (float32 array, RAS affine)."""
    from nilearn.datasets import load_mni152_template

    image = load_mni152_template(resolution=resolution)
    return np.asarray(image.get_fdata(), dtype=np.float32), np.asarray(image.affine, dtype=np.float64)


def torchio_parameters(states: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``RandomMotion``-like parameters for ``states`` poses: degrees (S−1, 3), translations (S−1, 3), times."""
    rng = np.random.default_rng(SEED + states)
    count = states - 1
    degrees = rng.uniform(-MAX_DEG, MAX_DEG, (count, 3))
    translation = rng.uniform(-MAX_MM, MAX_MM, (count, 3))
    step = 1.0 / states
    times = np.arange(1, states) * step + rng.uniform(-0.3 * step, 0.3 * step, count)
    return degrees, translation, times


def resampling_maps(degrees: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """TorchIO's resampling transforms ``x ↦ R x + t`` (LPS mm, about the origin): R = Rz Rx Ry of (θx, θy, θz)."""
    degrees = np.atleast_2d(degrees)
    maps = np.tile(np.eye(4), (len(degrees), 1, 1))
    maps[:, :3, :3] = Rotation.from_euler("ZXY", degrees[:, [2, 0, 1]], degrees=True).as_matrix()
    maps[:, :3, 3] = translation
    return maps


def torchio_blocks(times: np.ndarray, planes: int) -> list[tuple[int, int, int]]:
    """TorchIO's k-space blocks along the last axis: (first plane, end plane, pose index; 0 = unmoved)."""
    poses = list(range(len(times) + 1))
    centre = int(np.where(times > 0.5)[0].min()) if np.any(times > 0.5) else len(times)
    poses[0], poses[centre] = poses[centre], poses[0]  # Motion.sort_spectra
    ends = [int(v) for v in (planes * times).astype(int).tolist()] + [planes]
    blocks, start = [], 0
    for pose, end in zip(poses, ends, strict=True):
        blocks.append((start, end, pose))
        start = end
    return blocks


def our_motion(states, shape: tuple[int, int, int], sampling):
    """The MotionTrajectory of the TorchIO-equivalent motion (``states`` int) or one state per line ("line")."""
    from mrmotion.geometry.transforms import invert_rigid
    from mrmotion.physics.trajectory import MotionTrajectory

    n_read, n_phase, planes = shape
    line_start = sampling.time_s[::n_read]  # one entry per (ky, kz) line, kz outer
    keyed = 32 if states == "line" else states
    degrees, translation, times = torchio_parameters(keyed)
    maps = np.concatenate([np.eye(4)[None], resampling_maps(degrees, translation)])
    blocks = [b for b in torchio_blocks(times, planes) if b[1] > b[0]]
    if states != "line":
        starts = np.array([line_start[start * n_phase] for start, _, _ in blocks])
        poses = invert_rigid(maps[[pose for _, _, pose in blocks]])
        return MotionTrajectory(starts, poses, end_s=sampling.duration_s)
    params = np.concatenate([np.zeros((1, 6)), np.concatenate([degrees, translation], axis=1)])
    centres = np.array([(start + end) / 2.0 / planes for start, end, _ in blocks])
    keys = params[[pose for _, _, pose in blocks]]
    fraction = (np.arange(len(line_start)) + 0.5) / len(line_start)
    values = np.stack([np.interp(fraction, centres, keys[:, i]) for i in range(6)], axis=1)
    poses = invert_rigid(resampling_maps(values[:, :3], values[:, 3:]))
    return MotionTrajectory(line_start, poses, end_s=sampling.duration_s)


def scan_setup(resolution: int, states):
    from mrmotion.physics.encoding import ImageGrid
    from mrmotion.physics.sampling import cartesian

    data, affine = template(resolution)
    grid = ImageGrid(data.shape, LPS_FROM_RAS @ affine)
    sampling = cartesian(data.shape, (float(resolution),) * 3, mode="3d", order="linear", tr_s=TR_S)
    return data, affine, grid, sampling, our_motion(states, data.shape, sampling)


def head_coils(grid, count: int = 8):
    """8 loop coils on two rings around the volume, as ``mrmotion simulate`` builds them."""
    from mrmotion.physics.coils import head_array

    return head_array(grid, count)


def precision(size: int) -> tuple[float, type]:
    """NUFFT eps and dtype as the CLI chooses them (commands/scan.py)."""
    return 1e-4, (np.complex64 if size > 2_000_000 else np.complex128)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def info(**values) -> None:
    """Progress for the runner (stderr): kept even if the step is stopped later."""
    print("@info " + json.dumps(values), file=sys.stderr, flush=True)


def instrument(module, seen: dict, clock: list[float]) -> None:
    """Instrumentation only: record the operator's clusters and rank, and count/time its applications."""
    original = module.MotionEncoding

    class Recorded(original):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            ready = round(time.perf_counter() - clock[0], 1)
            seen.update(
                states=self.states, clusters=self.clusters, rank=self.rank, applications=0, operator_ready_s=ready
            )
            info(**seen)

        def normal(self, image):
            out = super().normal(image)
            seen["applications"] += 1
            info(applications=seen["applications"], at_s=round(time.perf_counter() - clock[0], 1))
            return out

    module.MotionEncoding = Recorded


#: Runs shorter than this (s) are repeated, up to REPEATS times, each in a fresh process, and the shortest kept
#: (``collect``).
REPEAT_BELOW_S, REPEATS = 20.0, 3


# -------------------------------------------------------------------------------------------------------- jobs
def job_torchio(spec: dict, tmp: Path) -> dict:
    import SimpleITK as sitk  # noqa: F401
    import torch
    import torchio as tio
    from torchio.data.io import nib_to_sitk

    data, affine = template(spec["resolution"])
    degrees, translation, times = torchio_parameters(spec["states"])
    transform = tio.Motion(degrees=degrees, translation=translation, times=times, image_interpolation="linear")
    # The conversion check: TorchIO's own transforms equal resampling_maps() on random points.
    sitk_image = nib_to_sitk(torch.from_numpy(data[None]), affine, force_3d=True)
    points = np.random.default_rng(1).uniform(-150, 150, (5, 3))
    ours = resampling_maps(degrees, translation)
    for transform_sitk, matrix in zip(
        transform.get_rigid_transforms(degrees, translation, sitk_image)[1:], ours, strict=False
    ):
        for point in points:
            moved = np.array(transform_sitk.TransformPoint(point.tolist()))
            if np.abs(moved - (matrix[:3, :3] @ point + matrix[:3, 3])).max() > 1e-9:
                raise RuntimeError("TorchIO's transform convention differs from resampling_maps()")
    del sitk_image
    subject = tio.Subject(t1=tio.ScalarImage(tensor=torch.from_numpy(data[None].copy()), affine=affine))
    start = time.perf_counter()
    result = transform(subject)  # once per process: repeats are fresh processes (collect)
    seconds = time.perf_counter() - start
    np.save(tmp / f"torchio_{spec['states']}.npy", result["t1"].data[0].numpy())
    visible = sum(1 for b in torchio_blocks(times, data.shape[2]) if b[1] > b[0])
    return {"seconds": seconds, "visible": visible}


def job_ours(spec: dict, tmp: Path) -> dict:
    import mrmotion.physics.simulate as simulate_module
    from mrmotion.commands.scan import coil_images, combine

    data, _, grid, sampling, motion = scan_setup(spec["resolution"], spec["states"])
    coils = head_coils(grid) if spec["coils"] == 8 else None
    coil_model = spec.get("coil_model", "exact")
    eps, dtype = precision(data.size)
    seen: dict = {}
    clock = [time.perf_counter()]
    instrument(simulate_module, seen, clock)
    # once per process: repeats are fresh processes (collect), each planning its FFTs anew
    start = clock[0] = time.perf_counter()
    scan = simulate_module.simulate(
        data, grid, sampling, motion, coils, None, coil_model, 0, eps, dtype, spec.get("max_clusters")
    )
    kspace_s = time.perf_counter() - start
    images = coil_images(scan.data, sampling)
    image = images[0] if coils is None else combine(images, scan.coil_maps)
    seconds = time.perf_counter() - start
    parts = {"kspace_s": kspace_s, "image_s": seconds - kspace_s}
    seen.pop("applications", None)
    seen.pop("operator_ready_s", None)
    tag = f"ours{spec['coils']}_{spec['states']}"
    np.save(tmp / f"{tag}.npy", image.astype(np.complex64))
    if spec.get("save_kspace"):
        np.save(tmp / "kspace.npy", scan.data)
        np.save(tmp / "maps.npy", scan.coil_maps)
    return {"seconds": seconds, **parts, **seen}


def job_recon3d(spec: dict, tmp: Path) -> dict:
    from mrmotion.physics.coils import GridCoilMaps
    from mrmotion.physics.simulate import acquisition_frame
    from mrmotion.recon.reconstruct import acquisition_grid, object_box, sense_reconstruction

    data, _, grid, sampling, motion = scan_setup(spec["resolution"], spec["states"])
    kspace = np.load(tmp / "kspace.npy")
    maps = np.load(tmp / "maps.npy")
    eps, dtype = precision(data.size)
    frame = acquisition_frame(grid)
    start = time.perf_counter()
    import mrmotion.recon.reconstruct as reconstruct_module

    seen: dict = {}
    instrument(reconstruct_module, seen, [start])
    recon_grid = acquisition_grid(sampling, frame)
    coils = GridCoilMaps(maps, recon_grid.scanner_from_voxel)
    result, _ = sense_reconstruction(
        kspace,
        sampling,
        frame,
        coils,
        motion,
        iterations=spec["iterations"],
        regularization=1e-4,
        coil_model=spec.get("coil_model", "exact"),
        eps=eps,
        dtype=dtype,
        exact_iterations=spec.get("exact_iterations", EXACT_ITERATIONS),
    )
    seconds = time.perf_counter() - start
    mask = data > 0.05 * data.max()
    error = np.linalg.norm((np.abs(result.image) - data)[mask]) / np.linalg.norm(data[mask])
    box = object_box(kspace, sampling, recon_grid, motion)  # not timed: the share of the grid reconstructed
    share = float(np.prod([part.stop - part.start for part in box]) / data.size)
    return {"seconds": seconds, "nrmse": float(error), "iterations": result.iterations, "box_share": share, **seen}


def job_recon2d(spec: dict, tmp: Path) -> dict:
    from mrmotion.geometry.parameters import transform_from_euler
    from mrmotion.geometry.transforms import make_transform
    from mrmotion.physics.coils import GridCoilMaps, estimate_coil_maps
    from mrmotion.physics.encoding import ImageGrid
    from mrmotion.physics.sampling import cartesian
    from mrmotion.physics.simulate import simulate
    from mrmotion.physics.trajectory import MotionTrajectory
    from mrmotion.recon.reconstruct import sense_reconstruction

    coil_images = np.moveaxis(np.load(SLICE)["arr_0"], -1, 0).astype(np.complex128)
    maps = estimate_coil_maps(coil_images, method="walsh")
    combined = np.sum(np.conj(maps) * coil_images, axis=0) / np.maximum(np.sum(np.abs(maps) ** 2, axis=0), 1e-12)
    shape = combined.shape
    grid = ImageGrid(shape, make_transform(np.eye(3), -np.array([*np.array(shape) // 2, 0.0])))
    coils = GridCoilMaps(maps, grid.scanner_from_voxel)
    sampling = cartesian((*shape, 1), (1.0, 1.0, 1.0), mode="3d", order="interleaved", shots=8)
    rng = np.random.default_rng(3)
    shots = np.unique(sampling.shot)
    starts = np.array([sampling.time_s[sampling.shot == s].min() for s in shots])
    angles = np.concatenate([[0.0], rng.uniform(-4, 4, len(shots) - 1)])
    shifts = np.concatenate([[[0.0, 0.0]], rng.uniform(-4, 4, (len(shots) - 1, 2))])
    poses = transform_from_euler(
        np.stack([np.zeros_like(angles)] * 2 + [angles], -1), np.concatenate([shifts, np.zeros((len(shots), 1))], -1)
    )
    motion = MotionTrajectory(starts, poses, end_s=sampling.duration_s)
    still = simulate(combined, grid, sampling, None, coils)
    start = time.perf_counter()
    corrupted = simulate(combined, grid, sampling, motion, coils)
    simulate_s = time.perf_counter() - start
    recon = dict(iterations=spec["iterations"], regularization=1e-4)
    reference, _ = sense_reconstruction(still.data, sampling, still.scanner_from_logical, coils, **recon)
    start = time.perf_counter()
    corrected, _ = sense_reconstruction(
        corrupted.data, sampling, corrupted.scanner_from_logical, coils, motion=motion, **recon
    )
    seconds = time.perf_counter() - start
    mask = np.abs(reference.image) > 0.1 * np.abs(reference.image).max()
    error = np.linalg.norm((corrected.image - reference.image)[mask]) / np.linalg.norm(reference.image[mask])
    return {"seconds": seconds, "simulate_s": simulate_s, "nrmse": float(error)}


JOBS = {"torchio": job_torchio, "ours": job_ours, "recon3d": job_recon3d, "recon2d": job_recon2d}


def worker(spec: dict, tmp: Path) -> None:
    result = JOBS[spec["job"]](spec, tmp)
    result["peak_gb"] = peak_gb()
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------- the runner
def rss_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def run(spec: dict, tmp: Path, cap_gb: float, limit_s: float, log) -> dict:
    """One job in a fresh process, stopped if its RSS passes ``cap_gb`` or it runs longer than ``limit_s``."""
    name = json.dumps(spec)
    log(f"running {name}")
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, __file__, "--worker", name, "--tmp", str(tmp)], stdout=stdout, stderr=stderr
        )
        start, highest, stopped = time.perf_counter(), 0.0, None
        while process.poll() is None:
            highest = max(highest, rss_gb(process.pid))
            elapsed = time.perf_counter() - start
            if highest > cap_gb:
                stopped = f"stopped: RSS passed {cap_gb:g} GB after {elapsed:.0f} s"
            elif elapsed > limit_s:
                stopped = f"stopped: still running after {limit_s:.0f} s"
            if stopped:
                process.kill()
                process.wait()
                break
            time.sleep(0.2)
    progress: dict = {}
    for line in err.read_text().splitlines():
        if line.startswith("@info "):
            progress.update(json.loads(line[6:]))
    if stopped:
        log(f"  {stopped} {progress}")
        return {"error": stopped, "peak_gb": highest, **progress}
    lines = out.read_text().strip().splitlines()
    if process.returncode != 0 or not lines:
        tail = err.read_text().strip().splitlines()[-3:]
        message = f"failed (exit {process.returncode}): " + " | ".join(tail)
        log(f"  {message}")
        return {"error": message[:300], "peak_gb": highest, **progress}
    result = json.loads(lines[-1])
    log(f"  {result}")
    return result


def magnitude_agreement(tmp: Path, ours: str, torchio: str, clean: np.ndarray) -> dict | None:
    a, b = tmp / f"{ours}.npy", tmp / f"{torchio}.npy"
    if not (a.exists() and b.exists()):
        return None
    x, y = np.abs(np.load(a)), np.abs(np.load(b))
    return {
        "corr": float(np.corrcoef(x.ravel(), y.ravel())[0, 1]),
        "nrmse_ours": float(np.linalg.norm(x - clean) / np.linalg.norm(clean)),
        "nrmse_torchio": float(np.linalg.norm(y - clean) / np.linalg.norm(clean)),
    }


def short_error(text: str) -> str:
    """One readable line for a failed step (numpy's allocation errors carry the size asked for)."""
    import re
    import textwrap

    found = re.search(r"Unable to allocate ([\d.]+ \w+) for an array with shape (\([^)]*\))", text)
    if found:
        return f"failed: out of memory\n(numpy asked for\n{found.group(1)}, {found.group(2)})"
    if "MrMotionError: " in text:  # our own refusal: its message says why
        message = text.split("MrMotionError: ", 1)[1].split(". ")[0]
        return "refused (MrMotionError):\n" + "\n".join(textwrap.wrap(message, 25)[:7])
    return text if len(text) < 60 else text[:57] + "…"


def cell(result: dict | None, detail: bool = False) -> str:
    if result is None:
        return "not run"
    structure = f"clusters {result['clusters']} · rank {result['rank']}" if "rank" in result else ""
    if "error" in result:
        text = f"{short_error(result['error'])}\n(RSS seen {result['peak_gb']:.1f} GB)"
        if structure:
            text += f"\n{structure}\noperator ready at {result.get('operator_ready_s', '?')} s"
        if result.get("applications"):
            text += f"\n{result['applications']} EᴴE done by {result['at_s']} s"
        return text
    text = f"{result['seconds']:.2f} s · {result['peak_gb']:.1f} GB"
    if detail and "kspace_s" in result:
        text += f"\nk-space {result['kspace_s']:.2f} + img {result['image_s']:.2f}\n{structure}"
    return text


def ok(result: dict | None) -> bool:
    return result is not None and "error" not in result


def ratio(slow: dict | None, fast: dict | None) -> float | None:
    return slow["seconds"] / fast["seconds"] if ok(slow) and ok(fast) else None


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "NOT met")


def collect(args, log) -> dict:
    """Run every step (each in its own process); returns the raw results."""
    resolution = 2 if args.quick else 1
    state_counts = [2, 8, 32] if args.quick else [2, 8, 32, 256]
    tmp = Path(tempfile.mkdtemp(prefix="mrmotion_bench_"))
    clean, _ = template(resolution)
    results = {
        "resolution": resolution,
        "shape": list(clean.shape),
        "rows": {},
        "recon3d": [],
        "cap_gb": args.cap_gb,
        "limit_s": args.limit_s,
    }

    def step(spec: dict) -> dict:
        """One job; when short, up to :data:`REPEATS` times, each in a fresh process (best kept), so that every run
        pays what a command-line run pays (FFTW keeps its measured plans for the rest of a process)."""
        result = run(spec, tmp, args.cap_gb, args.limit_s, log)
        tries = [result]
        short = spec["job"] in ("ours", "torchio") and ok(result) and result["seconds"] < REPEAT_BELOW_S
        while short and len(tries) < REPEATS:
            tries.append(run(spec, tmp, args.cap_gb, args.limit_s, log))
        good = [t for t in tries if ok(t)]
        return min(good, key=lambda t: t["seconds"]) if good else result

    try:
        for states in [*state_counts, "line"]:
            row = results["rows"][str(states)] = {}
            base = {"resolution": resolution, "states": states}
            if states != "line":
                row["torchio"] = step({"job": "torchio", **base})
            row["ours1"] = step({"job": "ours", "coils": 1, **base})
            row["ours8"] = step({"job": "ours", "coils": 8, **base, **({"save_kspace": True} if states == 8 else {})})
            if states in (2, 8, "line"):  # the approximation "coils move with the head": its time and growth
                row["ours8_moving"] = step({"job": "ours", "coils": 8, "coil_model": "moving", **base})
            if states == "line":  # the same physics for one uniform coil, without any coil clustering
                row["ours1_moving"] = step({"job": "ours", "coils": 1, "coil_model": "moving", **base})
                for cap in CAPPED_CLUSTERS:  # the exact model with fewer coil poses: faster, less accurate
                    row[f"ours8_cap{cap}"] = step({"job": "ours", "coils": 8, "max_clusters": cap, **base})
            else:
                row["agree1"] = magnitude_agreement(tmp, f"ours1_{states}", f"torchio_{states}", clean)
                row["agree8"] = magnitude_agreement(tmp, f"ours8_{states}", f"torchio_{states}", clean)
            for name in (f"ours1_{states}", f"ours8_{states}", f"torchio_{states}"):
                (tmp / f"{name}.npy").unlink(missing_ok=True)
        recon = None
        if (tmp / "kspace.npy").exists():
            recon = step({"job": "recon3d", "resolution": resolution, "states": 8, "iterations": 10})
        results["recon3d"].append([resolution, recon])
        if (tmp / "kspace.npy").exists():  # the same k-space (exact coils) reconstructed with coils moving
            spec = {"job": "recon3d", "resolution": resolution, "states": 8, "iterations": 10, "coil_model": "moving"}
            results["recon3d_moving"] = step(spec)
        if resolution == 1 and not ok(recon):
            log("no 1 mm reconstruction: the same at 2 mm")
            (tmp / "kspace.npy").unlink(missing_ok=True)
            step({"job": "ours", "coils": 8, "resolution": 2, "states": 8, "save_kspace": True})
            if (tmp / "kspace.npy").exists():
                results["recon3d"].append([2, step({"job": "recon3d", "resolution": 2, "states": 8, "iterations": 10})])
        results["recon2d"] = step({"job": "recon2d", "iterations": 15})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def render(results: dict) -> tuple[Table, list[str]]:
    """The table and the target lines from raw results."""
    resolution, shape, rows = results["resolution"], results["shape"], results["rows"]
    cap = results["cap_gb"]
    lines = shape[1] * shape[2]
    table = Table(
        title=f"Motion simulation, MNI152 {resolution} mm ({'×'.join(map(str, shape))}): ours vs TorchIO tio.Motion",
        caption=f"each step in its own process (wall time; peak RSS = ru_maxrss), stopped above {cap:g} GB RSS or "
        f"{results['limit_s']:.0f} s; runs under 20 s: best of 3 fresh processes",
    )
    widths = {"case": 22, "TorchIO Motion": 20, "ours, 1 coil": 24, "TorchIO/ ours": 8, "ours, 8 coils exact": 25}
    for column, width in [*widths.items(), ("agreement", 22)]:
        table.add_column(column, justify="left" if column in ("case", "agreement") else "right", width=width)
    for states, row in rows.items():
        if states == "line":
            label = f"one state per PE line\n({lines:,} states,\ncontinuous motion)"
            torchio_text = "not run (TorchIO has\none pose per kz plane\nat most)"
        else:
            visible = row["torchio"].get("visible")
            label = f"{states} states" + (f"\n({visible} visible)" if visible not in (None, int(states)) else "")
            torchio_text = cell(row["torchio"])
        speed = ratio(row.get("torchio"), row["ours1"])
        agreement = []
        for key, name in (("agree1", "1 coil"), ("agree8", "8 coils")):
            if row.get(key):
                agreement.append(f"corr {row[key]['corr']:.3f} ({name})")
        found = row.get("agree1") or row.get("agree8")
        if found:
            ours_text = f"/ours {row['agree1']['nrmse_ours']:.2f}" if row.get("agree1") else ""
            agreement += ["NRMSE vs clean:", f"TorchIO {found['nrmse_torchio']:.2f}{ours_text}"]
        table.add_row(
            label,
            torchio_text,
            cell(row["ours1"], True),
            "" if speed is None else f"{speed:.1f}×",
            cell(row["ours8"], True),
            "\n".join(agreement) or "—",
        )
        if "ours1_moving" in row:
            label = "the same, coils=None,\ncoil_model='moving'\n(same physics for a\nuniform coil)"
            table.add_row(label, "", cell(row["ours1_moving"], True), "", "", "")
        if "ours8_moving" in row:
            label = "the same, 8 coils,\ncoil_model='moving'\n(approximation)"
            table.add_row(label, "", "", "", cell(row["ours8_moving"], True), "")
        for cap in CAPPED_CLUSTERS:
            if f"ours8_cap{cap}" in row:
                label = f"the same, 8 coils\nexact, at most {cap}\ncoil poses (default 16)"
                table.add_row(label, "", "", "", cell(row[f"ours8_cap{cap}"], True), "")

    def number(value: float | None, unit: str = "×", digits: int = 2) -> str:
        return "—" if value is None else f"{value:.{digits}f}{unit}"

    table.add_section()
    growth1, growth8 = (
        ratio(rows["line"]["ours1"], rows["2"]["ours1"]),
        ratio(rows["line"]["ours8"], rows["2"]["ours8"]),
    )
    growth_moving = ratio(rows["line"].get("ours1_moving"), rows["2"]["ours1"])
    growth_moving8 = ratio(rows["line"].get("ours8_moving"), rows["2"].get("ours8_moving"))
    growth_capped = {cap: ratio(rows["line"].get(f"ours8_cap{cap}"), rows["2"]["ours8"]) for cap in CAPPED_CLUSTERS}
    capped_text = "".join(f"\n(≤ {cap} poses: {number(g)})" for cap, g in growth_capped.items() if g is not None)
    table.add_row(
        "time growth, 2 states\n→ one per PE line",
        "",
        ("—" if growth1 is None else f"{growth1:.2f}×")
        + ("" if growth_moving is None else f"\n('moving': {growth_moving:.2f}×)"),
        "",
        ("—" if growth8 is None else f"{growth8:.2f}×")
        + ("" if growth_moving8 is None else f"\n('moving': {growth_moving8:.2f}×)")
        + capped_text,
        "target ≤ 1.5×\n(—: a run did not finish)",
    )
    table.add_section()
    for size, result in results["recon3d"]:
        text = (
            "not run (no k-space:\nthe 8-state 8-coil\nsimulation did not\nfinish)" if result is None else cell(result)
        )
        detail = ""
        if ok(result):
            detail = f"NRMSE vs clean {result['nrmse']:.3f}\n{result['applications']} EᴴE in all\n"
            detail += f"box: {100 * result.get('box_share', 1.0):.0f}% of the grid"
        label = f"3-D recon {size} mm,\n8 coils, 8 states,\nCG-SENSE 10 it. moving\n+ {EXACT_ITERATIONS} it. exact"
        table.add_row(label, "", "", "", text, detail)
    moving_recon = results.get("recon3d_moving")
    if moving_recon is not None:
        detail = f"NRMSE vs clean {moving_recon['nrmse']:.3f}" if ok(moving_recon) else ""
        label = "the same, recon with\ncoil_model='moving'\nonly (approximation)"
        table.add_row(label, "", "", "", cell(moving_recon), detail)
    recon2d = results["recon2d"]
    recon2d_text = cell(recon2d) + (f"\n(simulate {recon2d['simulate_s']:.2f} s)" if ok(recon2d) else "")
    recon2d_detail = f"NRMSE vs still {recon2d['nrmse']:.3f}" if ok(recon2d) else ""
    table.add_row("2-D real slice\n256×216, 7 coils,\n8 shots, CG 15 it.", "", "", "", recon2d_text, recon2d_detail)

    at32 = ratio(rows.get("32", {}).get("torchio"), rows.get("32", {}).get("ours1"))
    growths = [g for g in (growth1, growth8) if g is not None]
    growth_met = False if any(g > 1.5 for g in growths) else (True if len(growths) == 2 else None)
    if not ok(rows["line"]["ours8"]):
        growth_met = False if growth_met is False else None
    sims8 = {states: row["ours8"] for states, row in rows.items()}
    sim8 = sims8["8"]
    if ok(sim8):
        sim_text, sim_met = f"{sim8['seconds']:.1f} s", sim8["seconds"] <= 30
    elif "MrMotionError" in sim8["error"]:
        sim_text, sim_met = "refused by mrmotion (exact coil model over its memory limit)", False
    else:
        sim_text, sim_met = f"did not finish within {cap:g} GB / {results['limit_s']:.0f} s", False
    others = ", ".join(
        f"{states}: {r['seconds']:.0f} s" if ok(r) else f"{states}: did not finish" for states, r in sims8.items()
    )
    moving_sim = rows.get("8", {}).get("ours8_moving")
    if ok(moving_sim):
        moving_met = moving_sim["seconds"] <= 30
        others += f"; coils moving with the head, 8 states: {moving_sim['seconds']:.0f} s → {verdict(moving_met)}"
    recon_main = results["recon3d"][0][1]
    if ok(recon_main):
        recon_text, recon_met = f"{recon_main['seconds']:.0f} s", recon_main["seconds"] <= 300
    elif recon_main is None:
        recon_text, recon_met = f"not run (no {resolution} mm k-space: its simulation did not finish)", None
    else:
        recon_text, recon_met = "did not finish", False
    for size, result in results["recon3d"][1:]:
        recon_text += f"; at {size} mm {number(result['seconds'], ' s', 0) if ok(result) else 'did not finish'}"
    moving_recon_text = ""
    if results.get("recon3d_moving") is not None:
        moving_recon = results["recon3d_moving"]
        moving_recon_text = (
            f" (reconstruction with coils moving with the head: {moving_recon['seconds']:.0f} s → "
            f"{verdict(moving_recon['seconds'] <= 300)})"
            if ok(moving_recon)
            else " (reconstruction with coils moving with the head: did not finish)"
        )
    keys = ("ours1", "ours8", "ours1_moving", "ours8_moving", *(f"ours8_cap{cap}" for cap in CAPPED_CLUSTERS))
    steps = [row[key] for row in rows.values() for key in keys if key in row]
    steps += [result for _, result in results["recon3d"] if result] + [recon2d]
    steps += [results["recon3d_moving"]] if results.get("recon3d_moving") else []
    worst = max(r["peak_gb"] for r in steps)
    memory_words = ("RSS passed", "Unable to allocate", "MemoryError")
    over = sum(1 for r in steps if not ok(r) and any(word in r["error"] for word in memory_words))
    refused = sum(1 for r in steps if not ok(r) and "MrMotionError" in r["error"])
    memory_text = f"worst seen {worst:.1f} GB, {over} step(s) stopped for memory"
    if refused:
        memory_text += f", {refused} step(s) refused by mrmotion (so not measured)"
    targets = [
        f"≥ 10× faster than TorchIO at 32 states (1 coil): {number(at32, digits=1)} → "
        f"{verdict(None if at32 is None else at32 >= 10)}",
        f"time growth 2 states → one state per PE line ≤ 1.5×: 1 coil {number(growth1)}, 8 coils {number(growth8)} → "
        + (
            "met for 1 coil, not measured for 8 coils"
            if growth_met is None and growth1 is not None and growth1 <= 1.5 and growth8 is None
            else verdict(growth_met)
        )
        + ("" if growth_moving8 is None else f" (8 coils moving with the head: {number(growth_moving8)}")
        + "".join(f"; exact, ≤ {cap} coil poses: {number(g)}" for cap, g in growth_capped.items() if g is not None)
        + ")",
        f"{resolution} mm, 8 coils exact, simulation ≤ 30 s: 8 states {sim_text} → {verdict(sim_met)} (all: {others})",
        f"{resolution} mm, 8 coils, 8 states, reconstruction ≤ 5 min: {recon_text} → {verdict(recon_met)}"
        + moving_recon_text,
        f"peak RSS ≤ 8 GB for every step of ours: {memory_text} → "
        + ("NOT met" if worst > 8 or over else ("met by the steps that ran" if refused else "met")),
    ]
    if resolution != 1:
        targets = [t + " (quick run at 2 mm; the targets are for 1 mm)" for t in targets]
    return table, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 mm volume, 2/8/32 states: a sanity run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    parser.add_argument("--profile", help="run one job (JSON spec) in this process under cProfile")
    parser.add_argument("--render", help="print the table of a saved results JSON (no runs)")
    parser.add_argument("--cap-gb", type=float, default=10.0, help="stop a step whose RSS passes this (GB)")
    parser.add_argument("--limit-s", type=float, help="stop a step running longer than this (s; 1800, quick 600)")
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker), Path(args.tmp))
        return
    if args.profile:
        tmp = Path(tempfile.mkdtemp(prefix="mrmotion_profile_"))
        try:
            spec = json.loads(args.profile)
            if spec["job"] == "recon3d":  # its input, not profiled
                job_ours(
                    {"resolution": spec["resolution"], "states": spec["states"], "coils": 8, "save_kspace": 1}, tmp
                )
            profile = cProfile.Profile()
            result = profile.runcall(JOBS[spec["job"]], spec, tmp)
            print(result, f"peak {peak_gb():.2f} GB")
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    console = Console(width=140, record=True)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        table, targets = render(saved)
        console.print(saved["header"], table, *targets, sep="\n")
        return

    if args.limit_s is None:
        args.limit_s = 600.0 if args.quick else 1800.0
    started = datetime.datetime.now()
    code_start, load_start = source_state(), " ".join(f"{v:.1f}" for v in os.getloadavg())

    def log(message: str) -> None:
        print(f"[{datetime.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    results = collect(args, log)
    load_end = " ".join(f"{v:.1f}" for v in os.getloadavg())
    results["header"] = (
        f"# {started:%Y-%m-%d %H:%M} · {platform.node()} · {os.cpu_count()} CPUs · "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GB RAM · Python "
        f"{platform.python_version()} · {versions()}\n# code: {code_start} at the start; {source_state()} at the end\n"
        f"# load average (1/5/15 min) at the start {load_start}, at the end {load_end} (other sessions share the "
        f"machine)\n# command: python benchmarks/simulate_vs_torchio.py{' --quick' if args.quick else ''} · "
        f"finished {datetime.datetime.now():%H:%M}"
    )
    table, targets = render(results)
    console.print(table)
    for line in targets:
        console.print(line)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"simulate_vs_torchio{'_quick' if args.quick else ''}"
    for suffix, text in (
        (".txt", results["header"] + "\n" + console.export_text()),
        (".json", json.dumps(results, indent=1)),
    ):
        partial = stem.with_suffix(suffix + ".tmp")
        partial.write_text(text)
        partial.replace(stem.with_suffix(suffix))
    log(f"wrote {stem}.txt and .json")


def source_state() -> str:
    """Fingerprint of the measured code (others edit src/ while benchmarks run): hash and newest change."""
    import hashlib

    files = sorted((HERE.parent / "src" / "mrmotion").rglob("*.py"))
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    newest = max(f.stat().st_mtime for f in files)
    return f"src/mrmotion sha256 {digest}, newest file change {datetime.datetime.fromtimestamp(newest):%Y-%m-%d %H:%M}"


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("torch", "torchio", "simpleitk", "finufft", "numpy"))


if __name__ == "__main__":
    main()
