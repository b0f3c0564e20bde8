"""Head pose from a 3-D volume: find the brain, then read its axes. The inference half of E(3)-Pose.

1. **Localise** (:class:`~mrmotion.pose.networks.Localiser`): the whole field of view resampled to a 48³ cube →
   brain probability → largest connected component → centroid and size (optionally refined, see
   :data:`SECOND_PASS` and :data:`REFINE_CENTRE`).
2. **Axes** (:class:`~mrmotion.pose.networks.EquivariantAxesNet`): a 17³ cube around the brain (brain ≈ 60% of its
   side) → head coordinates of every voxel → the proper rotation that best maps them onto the voxel positions
   (Kabsch, :class:`~mrmotion.pose.networks.CoordinateAxes`; left–right sign fixed by det = +1).

Output: :class:`PoseEstimate`, with ``scanner_from_head`` (head frame: origin at the brain centroid, axes left,
posterior, superior; scanner LPS mm) and a confidence in [0, 1] = (localiser's mean probability over the brain) ×
(how well the predicted head coordinates fit the voxel positions) × (plausibility of the brain's size), scaled by
:data:`UNVALIDATED_FACTOR` when the axis network's recorded validation error says it has not learned orientations
(then ``details["orientation_validated"]`` is False: the brain centre is usable, the rotation is not). Volumes of
any size, voxel shape and orientation are accepted: every stage resamples onto its own cube (after averaging blocks
of voxels when the input is much finer than the cube, so large volumes cost little memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.io.weights import read_weights, weights_metadata
from mrmotion.pose import synth
from mrmotion.pose.frames import brain_centre, brain_size_mm
from mrmotion.pose.train import make_network

LOCALISER_SIZE = 48
AXES_SIZE = 17
#: brains whose longest axis is outside this range (mm) are not plausible (fetal ≈ 50–110, adult ≈ 170–190).
PLAUSIBLE_SIZE_MM = (35.0, 230.0)
#: take the brain centre from the axis network's weights (finer grid) rather than from the localiser. Off: with the
#: weights shipped now the localiser's centre is the better one (benchmarks/results/pose*.txt).
REFINE_CENTRE = False
#: localise a second time on a cube twice the brain's size around the first centre. Off: with the shipped localiser
#: it made the centre worse (median 4.6 mm vs 3.6 mm on 10 held-out scouts), as the brain then fills much of the cube.
SECOND_PASS = False
#: below this confidence a pose should not drive a scanner; the CLI says so.
LOW_CONFIDENCE = 0.5
#: an axis network whose recorded validation error (median, degrees; in its weights' summary) is above this has not
#: learned orientations: its poses keep the brain centre but their confidence is scaled by UNVALIDATED_FACTOR
VALIDATED_DEG = 30.0
UNVALIDATED_FACTOR = 0.1


@dataclass(frozen=True)
class PoseEstimate:
    """A head pose. ``scanner_from_head`` (4, 4): head frame → scanner LPS mm; ``confidence`` in [0, 1]."""

    scanner_from_head: np.ndarray
    confidence: float
    brain_size_mm: float
    brain_volume_ml: float
    details: dict = field(default_factory=dict)


def _load(path: Path) -> tuple[torch.nn.Module, dict]:
    def build(config: dict) -> torch.nn.Module:
        return make_network(config["stage"], config.get("arch", "equivariant"))

    return read_weights(path, build, "pose", "mrmotion train-pose")


def weights_folder() -> Path:
    """The folder of the weights shipped with the package."""
    return Path(str(resources.files("mrmotion") / "weights"))


@dataclass
class PoseModel:
    """The two networks of the pose estimator. :meth:`load` reads the shipped weights."""

    localiser: torch.nn.Module
    axes: torch.nn.Module
    arch: str = "equivariant"
    axes_size: int = AXES_SIZE  # cube side (voxels) the axis network was trained on
    #: the axis network's last validation median rotation error (degrees) from its weights' summary; None: unknown
    axes_validation_deg: float | None = None

    @property
    def orientation_validated(self) -> bool:
        """Whether the axis network's recorded validation error is at most :data:`VALIDATED_DEG`."""
        return self.axes_validation_deg is not None and self.axes_validation_deg <= VALIDATED_DEG

    @classmethod
    def load(cls, folder: str | Path | None = None, arch: str = "equivariant") -> PoseModel:
        folder = Path(folder) if folder is not None else weights_folder()
        name = {"equivariant": "pose_axes.safetensors", "cnn": "pose_axes_cnn.safetensors"}.get(arch)
        if name is None:
            raise MrMotionError(f"unknown architecture {arch!r}: expected 'equivariant' or 'cnn'")
        localiser, _ = _load(folder / "pose_localiser.safetensors")
        axes, config = _load(folder / name)
        validation = weights_metadata(folder / name)["summary"].get("validation")
        validation = float(validation) if validation is not None else None
        return cls(localiser, axes, arch, int(config.get("size", AXES_SIZE)), validation)


_MODELS: dict[tuple[str, str], PoseModel] = {}


def default_model(arch: str = "equivariant") -> PoseModel:
    """The shipped model, loaded once per process."""
    key = (str(weights_folder()), arch)
    if key not in _MODELS:
        _MODELS[key] = PoseModel.load(arch=arch)
    return _MODELS[key]


def check_volume(data: np.ndarray, scanner_from_voxel: np.ndarray) -> np.ndarray:
    """The volume as float32 (magnitude if complex), refused with a reason if pose cannot be estimated from it."""
    data = np.asarray(data)
    if data.ndim != 3 or min(data.shape) < 2:
        raise MrMotionError(f"head pose needs a 3-D volume with at least 2 voxels per axis, got shape {data.shape}")
    if data.dtype.kind == "c":
        data = np.abs(data)
    data = np.asarray(data, dtype=np.float32)
    if not np.all(np.isfinite(data)):
        raise MrMotionError(f"the volume has {int(np.sum(~np.isfinite(data)))} NaN or infinite voxel(s)")
    if float(data.max()) == float(data.min()):
        raise MrMotionError(f"the volume is constant (every voxel is {float(data.min()):g}): there is no head in it")
    matrix = np.asarray(scanner_from_voxel, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix[:3, :3])) < 1e-9:
        raise MrMotionError("the volume's scanner_from_voxel must be a finite, invertible (4, 4) affine")
    return data


def resample_to_cube(
    data: np.ndarray, scanner_from_voxel: np.ndarray, centre_mm: np.ndarray, side_mm: float, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a volume onto an LPS-aligned ``size``³ cube (trilinear, zero outside), with anti-aliasing.

    When the cube's voxels are coarser than the input's, the input is first averaged over integer blocks and then
    smoothed with a Gaussian of the remaining scale ratio. Returns the cube and its ``scanner_from_voxel``.
    """
    grid = synth.cube_grid(centre_mm, side_mm, size)
    spacing = np.linalg.norm(scanner_from_voxel[:3, :3], axis=0)
    target = side_mm / size
    factors = np.maximum(np.floor(target / spacing).astype(int), 1)
    source, affine = data, np.asarray(scanner_from_voxel, dtype=np.float64)
    if np.any(factors > 1):
        trimmed = [s // f * f for s, f in zip(source.shape, factors, strict=True)]
        if min(trimmed) > 0:
            source = source[: trimmed[0], : trimmed[1], : trimmed[2]]
            shape = [v for s, f in zip(trimmed, factors, strict=True) for v in (s // f, f)]
            source = source.reshape(shape).mean(axis=(1, 3, 5))
            scale = np.diag([*factors, 1.0])
            scale[:3, 3] = (factors - 1) / 2.0
            affine = affine @ scale
            spacing = spacing * factors
    sigma = np.sqrt(np.maximum((target / spacing) ** 2 - 1, 0)) / 2.355
    if np.any(sigma > 0.3):
        source = ndimage.gaussian_filter(source, sigma, mode="nearest")
    coordinates = np.linalg.inv(affine) @ grid
    index = np.indices((size,) * 3, dtype=np.float64).reshape(3, -1)
    points = coordinates[:3, :3] @ index + coordinates[:3, 3:4]
    cube = ndimage.map_coordinates(source, points, order=1, cval=0.0).reshape((size,) * 3)
    return cube.astype(np.float32), grid


def _volume_box(data: np.ndarray, scanner_from_voxel: np.ndarray) -> tuple[np.ndarray, float]:
    corners = np.array(np.meshgrid(*[[-0.5, s - 0.5] for s in data.shape], indexing="ij")).reshape(3, -1)
    points = scanner_from_voxel[:3, :3] @ corners + scanner_from_voxel[:3, 3:4]
    low, high = points.min(axis=1), points.max(axis=1)
    return (low + high) / 2, float(np.max(high - low))


@torch.no_grad()
def _localise(model: PoseModel, data, scanner_from_voxel, centre, side, near: np.ndarray | None = None):
    cube, grid = resample_to_cube(data, scanner_from_voxel, centre, side, LOCALISER_SIZE)
    volume = torch.from_numpy(synth.normalise_intensity(cube))[None, None]
    probability = torch.sigmoid(model.localiser(volume))[0, 0].numpy().astype(np.float64)
    labels, count = ndimage.label(probability > 0.5)
    if count == 0:
        return None
    sums = ndimage.sum(probability, labels, index=np.arange(1, count + 1))
    if near is None:
        chosen = int(np.argmax(sums)) + 1
    else:  # the component closest to the first pass's centre, among the large ones
        centres = np.array(ndimage.center_of_mass(probability, labels, index=np.arange(1, count + 1)))
        world = (grid[:3, :3] @ centres.T + grid[:3, 3:4]).T
        distance = np.linalg.norm(world - near, axis=1)
        large = sums >= 0.25 * sums.max()
        chosen = int(np.argmin(np.where(large, distance, np.inf))) + 1
    component = np.where(labels == chosen, probability, 0.0)
    voxel_ml = (side / LOCALISER_SIZE) ** 3 / 1000
    return {
        "centre": brain_centre(component, grid),
        "size": brain_size_mm(component, grid),
        "volume_ml": float(component.sum() * voxel_ml),
        "probability": float(component[labels == chosen].mean()),
    }


@torch.no_grad()
def estimate_pose(data: np.ndarray, scanner_from_voxel: np.ndarray, model: PoseModel | None = None) -> PoseEstimate:
    """Head pose of the brain in a 3-D volume (voxel array and its ``scanner_from_voxel``, LPS mm).

    Raises :class:`~mrmotion.errors.MrMotionError` for volumes that are not 3-D, have NaNs, are constant, or in
    which no brain-like structure is found at all; a doubtful brain gives a low ``confidence`` instead.
    """
    scanner_from_voxel = np.asarray(scanner_from_voxel, dtype=np.float64)
    data = check_volume(data, scanner_from_voxel)
    model = model or default_model()
    centre, side = _volume_box(data, scanner_from_voxel)
    first = _localise(model, data, scanner_from_voxel, centre, side)
    if first is None:
        raise MrMotionError("no brain-like structure found in the volume (confidence 0): no pose to give")
    found = first
    if SECOND_PASS:
        second = _localise(model, data, scanner_from_voxel, first["centre"], 2.0 * first["size"], near=first["centre"])
        found = second or first
    size = float(np.clip(found["size"], *PLAUSIBLE_SIZE_MM))
    side = size / synth.BRAIN_SHARE_OF_CUBE
    cube, _ = resample_to_cube(data, scanner_from_voxel, found["centre"], side, model.axes_size)
    volume = torch.from_numpy(synth.normalise_intensity(cube))[None, None]
    axes = model.axes(volume)
    rotation = axes["rotation"][0].double().numpy()  # Kabsch: columns left, posterior, superior in the scanner
    low, high = PLAUSIBLE_SIZE_MM
    plausible = (
        1.0
        if low <= found["size"] <= high
        else float(np.exp(-abs(np.log(found["size"] / np.clip(found["size"], low, high))) * 3))
    )
    agreement = float(axes["confidence"][0])
    confidence = float(np.clip(found["probability"] * agreement * plausible, 0, 1))
    if not model.orientation_validated:  # the centre is the localiser's; the orientation has not been learned
        confidence *= UNVALIDATED_FACTOR
    pose = np.eye(4)
    pose[:3, :3] = rotation
    # the axis network's brain weights, on a finer grid than the localiser's, give the brain centre
    unit = side * (model.axes_size - 1) / model.axes_size  # mm per unit of the network's voxel positions
    refined = found["centre"] + axes["centre"][0].numpy().astype(np.float64) * unit
    pose[:3, 3] = refined if REFINE_CENTRE else found["centre"]
    details = {
        "centre_localiser_mm": found["centre"].tolist(),
        "centre_axes_mm": refined.tolist(),
        "localiser_probability": found["probability"],
        "axes_agreement": agreement,
        "size_plausibility": plausible,
        "orientation_validated": model.orientation_validated,
        "axes_validation_deg": model.axes_validation_deg,
    }
    return PoseEstimate(pose, confidence, float(found["size"]), float(found["volume_ml"]), details)
