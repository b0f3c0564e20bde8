"""Head pose from a 3-D volume: find the brain, then segment its regions and fit their layout. The inference half
of our version of E(3)-Pose.

1. **Localise** (:class:`~mrmotion.pose.networks.Localiser`): the whole field of view resampled to a 48³ cube →
   brain probability → most probable connected component → centroid and size. When the pose of stages 2–3 has a
   low confidence, they are run again on cubes cut for a larger and a smaller brain, and when still none is
   confident, the localiser is run again on a cube of :data:`ZOOM` brain sizes around the brain it found (finer
   voxels) and the sizes are tried again, then on one cut for half that brain (:data:`ZOOM_SIZES`: in a whole-uterus
   field of view the coarse localiser can merge the brain with the tissue around it), then the localiser's next
   connected components in the same way (:data:`OTHER_COMPONENTS`: it can take other tissue for the brain); the most
   confident pose is kept (the coarse localiser misjudges small brains). A volume with zeros outside its field of
   view (turned or padded by resampling, :mod:`mrmotion.pose.field_of_view`) is first given its nearest scanned
   values there.
2. **Orient** (:class:`~mrmotion.pose.networks.RegionNet`, :mod:`mrmotion.pose.regions`): a 32³ cube around the
   brain (brain ≈ 60% of its side) → probabilities of nine left–right-symmetric brain regions, averaged over
   the identity and the 3 half-turns of the grid about its axes (exactly equivariant to them) → the proper rotation
   that best carries the atlas's principal axes and region centroids onto the measured ones (Kabsch; the left–right
   axis is the pseudovector fixed by det = +1) and the brain centre (the regions' centroid, on a finer grid than the
   localiser's).
3. **Refine** (:mod:`mrmotion.pose.template`, when the model has region templates, as the shipped one does): the
   rotation that best overlaps the region probabilities with the template of the training atlas of nearest brain
   size, searched from the closed-form one over the 24 ways its axes could be mixed up.

Both networks run in channels-last layout and, where the CPU computes bfloat16 natively, with bfloat16 convolutions
(:attr:`PoseModel.precision`; on training-atlas scouts, benchmarks/results/pose_speed_settings.txt: 0.24 → 0.17 s per
volume, poses within 0.21° median of the float32 ones, the same accuracy).

Output: :class:`PoseEstimate`, with ``scanner_from_head`` (head frame: origin at the brain centre, axes left,
posterior, superior; scanner LPS mm) and a confidence in [0, 1] = (localiser's mean probability over the brain) ×
(how well the regions match the template, :data:`TEMPLATE_SCORE_RANGE`, for the adult template
:data:`ADULT_TEMPLATE_SCORE_RANGE`; without templates: how well the region
centroids fit the atlas's layout × how clearly they choose the signs of the brain's principal axes) ×
(plausibility of the brain's size), scaled by
:data:`UNVALIDATED_FACTOR` when the region network's recorded validation error says it has not learned orientations
(then ``details["orientation_validated"]`` is False). Volumes of any size, voxel shape and orientation are accepted:
every stage resamples onto its own cube (after averaging blocks of voxels when the input is much finer than the
cube, so large volumes cost little memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.geometry.parameters import rotation_distance
from mrmotion.geometry.transforms import procrustes_rotation
from mrmotion.io.weights import read_weights, weights_metadata
from mrmotion.pose import synth
from mrmotion.pose.field_of_view import edges_extended, outside_field_of_view
from mrmotion.pose.frames import brain_centre, brain_size_mm
from mrmotion.pose.networks import inference_precision, resolved_precision, single_threaded_blas
from mrmotion.pose.prospective import RELIABLE_CONFIDENCE
from mrmotion.pose.regions import AtlasLayout, pose_from_regions, symmetrised_probabilities
from mrmotion.pose.template import RegionTemplates, TemplateScore, refine_rotation
from mrmotion.pose.train import make_network

LOCALISER_SIZE = 48
#: factors on the localiser's brain size (which sets the side of the region network's cube) tried in turn while
#: the pose's confidence is low: the localiser's coarse grid often misjudges 20-week brains at 3 mm by 15–30%, and a
#: cube cut for the wrong size crops or shrinks the brain the region network sees. The most confident pose is kept.
#: On scouts of the youngest training atlases (GA 21, 22, 24; benchmarks/results/pose_fallbacks.txt) failures fell
#: from 7.2% to 5.6% and doubtful poses from 12.2% to 7.2%. (Trying the localiser's other components as well changed
#: nothing there, in a scratch run, so it is not done.)
RESCALES = (1.18, 0.85)
#: when no size gives a confident pose, the localiser is run again on a cube of this many of its brain sizes
#: around the brain it found (finer voxels: a better centre and size), and the sizes tried again; 0: not done.
#: On the same training-atlas scouts (benchmarks/results/pose_fallbacks.txt): failures 5.6% -> 4.4%, doubtful poses
#: 7.2% -> 6.1%, none confident and wrong.
ZOOM = 3.0
#: factors on the localiser's brain size for the zoomed cubes, tried in turn while no pose is confident: in wide
#: fields of view (the whole uterus, 4–6 brain sizes) the coarse localiser can merge the brain with the tissue around
#: it and find a brain twice too large, so the second cube is cut for half of it (benchmarks/pose_full_field.py)
ZOOM_SIZES = (1.0, 0.5)
#: when no pose of the localiser's most probable brain is confident, its next most probable connected components
#: (at most this many) are tried in turn, each as the first was (sizes, then zooms): in whole-uterus fields of view it
#: can take maternal or fetal-body tissue for the brain and find the brain as a smaller component
#: (benchmarks/pose_full_field.py, benchmarks/pose_epi_scouts.py); 0: only the most probable
OTHER_COMPONENTS = 3
#: whether the localiser is averaged with its run on the mirrored volume (benchmarks/pose_speed_settings.py)
LOCALISER_MIRROR = True
#: probability above which the localiser's components are taken when none reaches 0.5 (a faint brain: its low
#: mean probability keeps the confidence low)
WEAK_THRESHOLD = 0.25
#: the region templates' file in a weights folder (optional: without it the closed-form rotation is kept)
TEMPLATES_FILE = "pose_templates.safetensors"
REGION_SIZE = 32
#: brains whose longest axis is outside this range (mm) are not plausible (fetal ≈ 50–110, adult ≈ 170–190).
PLAUSIBLE_SIZE_MM = (35.0, 230.0)
#: below this confidence a pose should not drive a scanner; the CLI says so, and `mrmotion prescribe` refuses it
LOW_CONFIDENCE = RELIABLE_CONFIDENCE
#: a region network whose recorded validation error (median, degrees; in its weights' summary) is above this has
#: not learned orientations: its poses keep the brain centre but their confidence is scaled by UNVALIDATED_FACTOR
VALIDATED_DEG = 30.0
UNVALIDATED_FACTOR = 0.1
#: RMS misfit of the region centroids (in brain sizes) at which the fit's agreement factor falls to exp(-1)
#: (training-atlas scouts, benchmarks/pose_fit_settings.py: correct poses 0.095 median, 0.109 at the 95th
#: percentile; the wrong ones 0.14 and 0.16)
RESIDUAL_SCALE = 0.2
#: margin by which the chosen signs of the principal axes beat the next best (regions.pose_from_regions) below
#: which the confidence falls linearly (a head whose regions cannot tell front from back may be turned 180°):
#: on training-atlas scouts (benchmarks/pose_fit_settings.py) the wrong poses had 0.14 and 0.27, 95% of the right
#: ones ≥ 0.62
SIGN_MARGIN_SCALE = 0.4
#: template scores (mean soft Dice of the regions, :class:`~mrmotion.pose.template.TemplateScore`) between which the
#: confidence rises linearly from 0 to full. Chosen on 60 scouts of the training atlases (never the held-out ones;
#: benchmarks/results/pose_fit_settings_shipped.txt): the one failure scored 0.33, correct poses 0.36 / 0.40 / 0.47
#: at their 1st / 5th / 50th percentiles
TEMPLATE_SCORE_RANGE = (0.30, 0.40)
#: the same for the adult template (chosen when the nearest template's brain is larger than ADULT_BRAIN_MM: the
#: fetal atlases' brains are at most 110 mm, the MNI152's 183 mm), whose scores run lower (a coarser, rule-labelled
#: template of a larger, folded brain). Chosen on 150 scouts of the adult tissue maps the region network learned
#: (never the T1 image benchmarks/pose_adult.py also tests; seed 99, not the benchmark's; python
#: benchmarks/pose_adult.py --calibration 150, benchmarks/results/pose_adult_calibration.txt): the 3 failures scored
#: 0.285, 0.298 and 0.313, correct poses 0.307 / 0.319 / 0.354 at their 1st / 5th / 50th percentiles. With the
#: fetal range 53% of those poses were confident, with this one 86%, none of them a failure
ADULT_TEMPLATE_SCORE_RANGE = (0.30, 0.35)
ADULT_BRAIN_MM = 140.0
#: symmetries of the grid the region network is averaged over, per architecture (regions.grid_symmetries). The
#: 12 tetrahedral rotations cost half the 24 and were as accurate on training-atlas scouts (both 10% failures, medians
#: within 0.4°; no average: 20%; benchmarks/pose_fit_settings.py). The 4 rotations of "klein" (the identity, 3
#: half-turns) cost a third of the 12: on 96 scouts of the training atlases
#: (benchmarks/results/pose_symmetry_groups.txt) 0.40 s against 0.66 s per volume, median 3.5° against 3.2°, 95th
#: percentile 9.2° against 10.4°, failures 3.1% both; so they are the default
GROUPS = {"equivariant": "klein", "cnn": "identity"}
#: ``PoseModel.passes`` > 1: a confident pose is estimated again on region cubes shifted by half a cube voxel toward
#: these corners of a regular tetrahedron (along the volume's axes), in this order, and the rotations of the passes
#: that agree are averaged (:func:`_averaged_over_shifts`). Shifting by less than a voxel keeps the cube's axes, and
#: hence the scan's thick slices, where they were and changes only where the grid samples the head. With 5 passes
#: (``benchmarks/pose.py --passes 5``, results/pose_passes5.txt) the held-out median went from 3.5° to 3.3°, the
#: p95 from 10.1° to 9.4°, pose(R·x) vs R·pose(x) from 3.5° to 3.0° (head re-rendered) and from 3.8° to 2.9°
#: (voxels turned), at about 3 times the time per volume; 3 passes did as well (``--passes 3``, pose_passes3.txt).
SHIFT_DIRECTIONS = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=np.float64)
MAX_PASSES = 1 + len(SHIFT_DIRECTIONS)
#: a shifted pass joins the average only if it is confident and its rotation is within this angle (degrees) of the
#: first pass's: without this rule one confident wrong pass (81° off) pulled an average into a failure (scratch)
PASS_AGREEMENT_DEG = 15.0
#: the zeros outside the field of view of volumes with more voxels than this (256³) are left as they are
#: (:func:`estimate_pose`): the nearest-voxel fill needs several bytes per voxel for each axis
EXTEND_MAX_VOXELS = 256**3


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
        return make_network(config["stage"])

    return read_weights(path, build, "pose", "mrmotion train-pose")


def weights_folder() -> Path:
    """The folder of the weights shipped with the package."""
    return Path(str(resources.files("mrmotion") / "weights"))


@dataclass
class PoseModel:
    """The two networks of the pose estimator and the atlas layout they fit. :meth:`load` reads the shipped weights.

    ``arch`` "equivariant" averages the region network over the identity and the 3 half-turns of the grid about its
    axes (exactly equivariant to them); "cnn" runs it once (the plain CNN: the same network, no symmetry)."""

    localiser: torch.nn.Module
    regions: torch.nn.Module
    layout: AtlasLayout  # where the regions lie in the atlas, which poses are fitted to
    arch: str = "equivariant"
    size: int = REGION_SIZE  # cube side (voxels) the region network was trained on
    #: the region network's last validation median rotation error (degrees) from its weights' summary; None: unknown
    validation_deg: float | None = None
    #: region templates of the training atlases (:mod:`mrmotion.pose.template`); None: the closed-form rotation is
    #: not refined
    templates: RegionTemplates | None = None
    #: arithmetic of both networks (:data:`~mrmotion.pose.networks.PRECISIONS`; "auto": bfloat16 where the CPU
    #: has it natively)
    precision: str = "auto"
    #: region cubes whose rotations are averaged for a confident pose, 1 to :data:`MAX_PASSES` (the first as
    #: found, the others shifted by half a voxel, :data:`SHIFT_DIRECTIONS`): more accurate, each pass costing
    #: about as much as the first
    passes: int = 1

    def __post_init__(self) -> None:
        resolved_precision(self.precision)  # refuses an unknown one here rather than at the first volume
        check_passes(self.passes)
        # channels-last layout: PyTorch's CPU convolutions and our upsampling are faster in it (the same arithmetic)
        for network in (self.localiser, self.regions):
            network.eval().to(memory_format=torch.channels_last_3d)

    @property
    def orientation_validated(self) -> bool:
        """Whether the region network's recorded validation error is at most :data:`VALIDATED_DEG`."""
        return self.validation_deg is not None and self.validation_deg <= VALIDATED_DEG

    @classmethod
    def load(cls, folder: str | Path | None = None, arch: str = "equivariant") -> PoseModel:
        if arch not in GROUPS:
            raise MrMotionError(f"unknown architecture {arch!r}: expected one of {', '.join(GROUPS)}")
        folder = Path(folder) if folder is not None else weights_folder()
        localiser, _ = _load(folder / "pose_localiser.safetensors")
        regions, config = _load(folder / "pose_regions.safetensors")
        metadata = weights_metadata(folder / "pose_regions.safetensors")
        if "layout" not in metadata:
            raise MrMotionError(f"{folder / 'pose_regions.safetensors'}: no atlas layout in its metadata")
        layout = AtlasLayout.from_dict(metadata["layout"])
        validation = metadata["summary"].get("validation")
        validation = float(validation) if validation is not None else None
        templates = None
        if (folder / TEMPLATES_FILE).is_file():
            templates, _ = read_weights(
                folder / TEMPLATES_FILE,
                lambda c: RegionTemplates(
                    len(weights_metadata(folder / TEMPLATES_FILE)["summary"]["atlases"]), c["size"]
                ),
                "pose region templates",
                "mrmotion train-pose --stage templates",
            )
        return cls(localiser, regions, layout, arch, int(config.get("size", REGION_SIZE)), validation, templates)


def check_passes(passes: int) -> int:
    """``passes`` if it is a whole number from 1 to :data:`MAX_PASSES`, else a clear error."""
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or not 1 <= passes <= MAX_PASSES:
        raise MrMotionError(f"passes must be a whole number from 1 to {MAX_PASSES}, got {passes!r}")
    return int(passes)


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
    data: np.ndarray,
    scanner_from_voxel: np.ndarray,
    centre_mm: np.ndarray,
    side_mm: float,
    size: int,
    axes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a volume onto a ``size``³ cube (trilinear, zero outside), with anti-aliasing.

    The cube's edges run along the columns of ``axes`` (3, 3, orthonormal; default: the scanner's LPS axes). When
    the cube's voxels are coarser than the input's, the input is first averaged over integer blocks and then
    smoothed with a Gaussian of the remaining scale ratio. Returns the cube and its ``scanner_from_voxel``.
    """
    grid = synth.cube_grid(centre_mm, side_mm, size, axes)
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


def volume_axes(scanner_from_voxel: np.ndarray) -> np.ndarray:
    """(3, 3) orthonormal axes of a volume's voxel grid in the scanner (nearest orthonormal matrix to its affine's
    columns; a left-handed grid stays left-handed). Every stage resamples onto cubes along them, so the networks see
    the same input however the volume is oriented in the scanner, and the pose rotates exactly with its affine."""
    columns = scanner_from_voxel[:3, :3] / np.linalg.norm(scanner_from_voxel[:3, :3], axis=0)
    u, _, vt = np.linalg.svd(columns)
    return u @ vt


def _volume_box(data: np.ndarray, scanner_from_voxel: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (scanner mm) and longest side (mm) of the volume's field of view, along its own axes."""
    centre = scanner_from_voxel[:3, :3] @ ((np.array(data.shape) - 1) / 2) + scanner_from_voxel[:3, 3]
    return centre, float(np.max(np.array(data.shape) * np.linalg.norm(scanner_from_voxel[:3, :3], axis=0)))


def _network_input(cube: np.ndarray) -> torch.Tensor:
    """A resampled cube as the networks take it: intensity-normalised, (1, 1, n, n, n), channels-last."""
    volume = torch.from_numpy(synth.normalise_intensity(cube))[None, None]
    return volume.contiguous(memory_format=torch.channels_last_3d)


class _Components:
    """The localiser's connected components, most probable (largest summed probability) first, at most
    1 + :data:`OTHER_COMPONENTS`. ``components[i]``: centre and size (mm), volume (ml) and mean probability of the
    i-th, computed when first asked for (a few ms each; most volumes need only the first)."""

    def __init__(self, probability: np.ndarray, labels: np.ndarray, order: np.ndarray, grid: np.ndarray, side: float):
        self._probability, self._labels, self._order, self._grid, self._side = probability, labels, order, grid, side
        self._found: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self._order)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index not in self._found:
            inside = self._labels == self._order[index]
            component = np.where(inside, self._probability, 0.0)
            self._found[index] = {
                "centre": brain_centre(component, self._grid),
                "size": brain_size_mm(component, self._grid),
                "volume_ml": float(component.sum() * (self._side / LOCALISER_SIZE) ** 3 / 1000),
                "probability": float(component[inside].mean()),
            }
        return self._found[index]


@torch.no_grad()
def _localise(model: PoseModel, data, scanner_from_voxel, centre, side, axes) -> _Components:
    """Where the localiser finds a brain (averaged over the volume and its mirror image along the first voxel axis):
    its connected components above probability 0.5, or when none reaches 0.5, above :data:`WEAK_THRESHOLD` (their
    low mean probability then lowers the confidence), the most probable first (:class:`_Components`; empty when
    nothing is found)."""
    cube, grid = resample_to_cube(data, scanner_from_voxel, centre, side, LOCALISER_SIZE, axes)
    volume = _network_input(cube)
    # averaged with the mirror image (a mirrored head has the mirrored brain). In float32 a batch of two also takes
    # PyTorch's oneDNN convolutions, where one volume gets its native ones: two volumes cost less than one
    # (benchmarks/results/pose_localiser_batch.txt); in bfloat16 both take oneDNN's
    with inference_precision(model.precision):
        if LOCALISER_MIRROR:
            logits = model.localiser(torch.cat([volume, volume.flip(2)])).float()
            logits = (logits[0, 0] + logits[1, 0].flip(0)) / 2
        else:
            logits = model.localiser(volume).float()[0, 0]
    probability = torch.sigmoid(logits).numpy().astype(np.float64)
    for threshold in (0.5, WEAK_THRESHOLD):
        labels, count = ndimage.label(probability > threshold)
        if count:
            break
    sums = ndimage.sum(probability, labels, index=np.arange(1, count + 1)) if count else np.zeros(0)
    order = np.argsort(-sums, kind="stable")[: 1 + OTHER_COMPONENTS] + 1
    return _Components(probability, labels, order, grid, side)


@torch.no_grad()
@single_threaded_blas
def estimate_pose(data: np.ndarray, scanner_from_voxel: np.ndarray, model: PoseModel | None = None) -> PoseEstimate:
    """Head pose of the brain in a 3-D volume (voxel array and its ``scanner_from_voxel``, LPS mm).

    When the pose's confidence is below :data:`LOW_CONFIDENCE`, the region cube is cut again for the brain sizes
    of :data:`RESCALES`; when none is confident, the brain is localised again on a cube of :data:`ZOOM` of its
    sizes around it (and then of its half-sizes, :data:`ZOOM_SIZES`) and the sizes tried again; when still none is,
    the localiser's next connected components are tried the same way (:data:`OTHER_COMPONENTS`). The most confident
    pose is kept (``details["size_factor"]``: its factor on the localiser's brain size; ``details["zoomed"]``:
    whether it came from a zoomed localiser; ``details["component"]``: which of the localiser's components, 0 the
    most probable; ``details["field_of_view_extended"]``: whether the zeros outside the field of view were filled).

    A volume with zeros outside its field of view (turned or padded by resampling,
    :func:`~mrmotion.pose.field_of_view.outside_field_of_view`; at most :data:`EXTEND_MAX_VOXELS` voxels) is searched
    with those voxels given their nearest scanned value.

    Raises :class:`~mrmotion.errors.MrMotionError` for volumes that are not 3-D, have NaNs, are constant, or in
    which no brain-like structure is found at all; a doubtful brain gives a low ``confidence`` instead.
    """
    scanner_from_voxel = np.asarray(scanner_from_voxel, dtype=np.float64)
    data = check_volume(data, scanner_from_voxel)
    model = model or default_model()
    outside = outside_field_of_view(data) if data.size <= EXTEND_MAX_VOXELS else None
    searched = data if outside is None else edges_extended(data, outside)
    best = _most_confident_pose(model, searched, scanner_from_voxel)
    if model.passes > 1 and best.confidence >= LOW_CONFIDENCE:
        best = _averaged_over_shifts(model, searched, scanner_from_voxel, best)
    best.details["field_of_view_extended"] = outside is not None
    if not model.orientation_validated:  # the region network has not learned orientations. Scaled here, after the
        # retries, which follow the network's own confidence: scaled, every pose would look doubtful and be retried
        best = replace(best, confidence=best.confidence * UNVALIDATED_FACTOR)
    return best


def _averaged_over_shifts(
    model: PoseModel, data: np.ndarray, scanner_from_voxel: np.ndarray, first: PoseEstimate
) -> PoseEstimate:
    """``first`` with its rotation averaged (chordal mean) with those of ``model.passes − 1`` more region cubes cut
    for the same brain, shifted by half a cube voxel along :data:`SHIFT_DIRECTIONS`; a pass counts only if it is
    confident and within :data:`PASS_AGREEMENT_DEG` of ``first``. The centre and confidence stay ``first``'s;
    ``details["passes"]``: how many rotations were averaged (1: none agreed)."""
    axes = volume_axes(scanner_from_voxel)
    found = {
        "centre": np.asarray(first.details["centre_localiser_mm"], dtype=np.float64),
        "size": first.brain_size_mm,
        "probability": first.details["localiser_probability"],
        "volume_ml": first.brain_volume_ml,
    }
    voxel_mm = _region_cube_side_mm(first.brain_size_mm) / model.size
    rotations = [first.scanner_from_head[:3, :3]]
    for direction in SHIFT_DIRECTIONS[: model.passes - 1]:
        shifted = {**found, "centre": found["centre"] + axes @ (0.5 * voxel_mm * direction)}
        try:
            other = _pose_of_brain(model, data, scanner_from_voxel, axes, shifted)
        except MrMotionError:  # no regions in this cube: the pass does not count
            continue
        angle = np.degrees(rotation_distance(first.scanner_from_head, other.scanner_from_head))
        if other.confidence >= LOW_CONFIDENCE and angle <= PASS_AGREEMENT_DEG:
            rotations.append(other.scanner_from_head[:3, :3])
    pose = first.scanner_from_head.copy()
    pose[:3, :3] = procrustes_rotation(np.sum(rotations, axis=0))
    return replace(first, scanner_from_head=pose, details={**first.details, "passes": len(rotations)})


def _most_confident_pose(model: PoseModel, data: np.ndarray, scanner_from_voxel: np.ndarray) -> PoseEstimate:
    """The most confident pose over the localiser's components (each searched by :func:`_pose_near`), stopping at
    the first confident one."""
    centre, side = _volume_box(data, scanner_from_voxel)
    axes = volume_axes(scanner_from_voxel)
    components = _localise(model, data, scanner_from_voxel, centre, side, axes)
    if not components:
        raise MrMotionError("no brain-like structure found in the volume (confidence 0): no pose to give")
    best = None
    for rank in range(len(components)):
        if best is not None and best.confidence >= LOW_CONFIDENCE:
            break
        again = _pose_near(model, data, scanner_from_voxel, axes, components[rank], side)
        if again is not None and (best is None or again.confidence > best.confidence):
            again.details["component"] = rank
            best = again
    if best is None:
        raise MrMotionError("no brain regions found around the brain centre (confidence 0): no pose to give")
    return best


def template_score_range(template_brain_mm: float) -> tuple[float, float]:
    """The template scores between which a pose's confidence rises from 0 to full, for a template of an atlas whose
    brain is ``template_brain_mm`` long: :data:`ADULT_TEMPLATE_SCORE_RANGE` above :data:`ADULT_BRAIN_MM`, else
    :data:`TEMPLATE_SCORE_RANGE`."""
    return ADULT_TEMPLATE_SCORE_RANGE if template_brain_mm > ADULT_BRAIN_MM else TEMPLATE_SCORE_RANGE


def _pose_near(
    model: PoseModel, data: np.ndarray, scanner_from_voxel: np.ndarray, axes: np.ndarray, found: dict, side: float
) -> PoseEstimate | None:
    """The most confident pose of the brain ``found`` by the coarse localiser: the cube sizes of :data:`RESCALES`,
    then, while none is confident, the zoomed localiser's brain (:data:`ZOOM`, :data:`ZOOM_SIZES`) and its sizes.
    None when no cube has brain regions."""
    best = _most_confident_size(model, data, scanner_from_voxel, axes, found)
    for factor in ZOOM_SIZES if ZOOM else ():
        if best is not None and best.confidence >= LOW_CONFIDENCE:
            break
        zoom_side = ZOOM * float(np.clip(found["size"] * factor, *PLAUSIBLE_SIZE_MM))
        zoomed = _localise(model, data, scanner_from_voxel, found["centre"], min(zoom_side, side), axes)
        if zoomed:
            again = _most_confident_size(model, data, scanner_from_voxel, axes, zoomed[0])
            if again is not None and (best is None or again.confidence > best.confidence):
                again.details["zoomed"] = True
                best = again
    if best is not None:
        best.details.setdefault("zoomed", False)
    return best


def _most_confident_size(
    model: PoseModel, data: np.ndarray, scanner_from_voxel: np.ndarray, axes: np.ndarray, found: dict
) -> PoseEstimate | None:
    """The pose of the brain ``found`` by the localiser, tried with the cube cut for the sizes of :data:`RESCALES`
    while its confidence is below :data:`LOW_CONFIDENCE`; the most confident, or None when no size has regions."""
    best = None
    for factor in (1.0, *RESCALES):
        try:
            estimate = _pose_of_brain(model, data, scanner_from_voxel, axes, {**found, "size": found["size"] * factor})
        except MrMotionError:  # no brain regions in a cube of this size: another size may have them
            continue
        estimate.details["size_factor"] = factor
        if best is None or estimate.confidence > best.confidence:
            best = estimate
        if best.confidence >= LOW_CONFIDENCE:
            break
    return best


def _region_cube_side_mm(brain_size_mm: float) -> float:
    """Side (mm) of the region cube cut for a brain of this size (clipped to :data:`PLAUSIBLE_SIZE_MM`)."""
    return float(np.clip(brain_size_mm, *PLAUSIBLE_SIZE_MM)) / synth.BRAIN_SHARE_OF_CUBE


def _pose_of_brain(
    model: PoseModel, data: np.ndarray, scanner_from_voxel: np.ndarray, axes: np.ndarray, found: dict
) -> PoseEstimate:
    """The pose of the brain at ``found`` (centre and size in mm, volume, the localiser's mean probability), from
    the region network on a cube cut for that size."""
    size = float(np.clip(found["size"], *PLAUSIBLE_SIZE_MM))
    side = _region_cube_side_mm(size)
    cube, grid = resample_to_cube(data, scanner_from_voxel, found["centre"], side, model.size, axes)
    volume = _network_input(cube)
    with inference_precision(model.precision):
        probability = symmetrised_probabilities(model.regions, volume, GROUPS[model.arch])
    points = synth.grid_points(grid, (model.size,) * 3)
    try:
        fit = pose_from_regions(probability.flatten(1).double().numpy(), points, model.layout, size)
    except MrMotionError:
        raise MrMotionError("no brain regions found in the cube around the brain") from None
    low, high = PLAUSIBLE_SIZE_MM
    if low <= found["size"] <= high:
        plausible = 1.0
    elif found["size"] <= 0:  # a one-voxel component (another component of the localiser's)
        plausible = 0.0
    else:
        plausible = float(np.exp(-abs(np.log(found["size"] / np.clip(found["size"], low, high))) * 3))
    agreement = float(np.exp(-((fit["residual"] / RESIDUAL_SCALE) ** 2)))
    signs = float(np.clip(fit["sign_margin"] / SIGN_MARGIN_SCALE, 0, 1))
    evidence = agreement * signs  # how far the closed-form rotation can be trusted
    rotation, template_score = fit["rotation"], None
    if model.templates is not None:
        # in the volume's own axes (about the brain centre), so that float32 rounding, and hence the search, is
        # the same however the volume lies in the scanner (the pose then turns exactly with its affine)
        local = axes.T @ (points - fit["centre"][:, None])
        template = model.templates.nearest(size)
        low, high = template_score_range(model.templates.nearest_brain_size(size))
        score = TemplateScore(probability.flatten(1).numpy(), local, np.zeros(3), size, template)
        rotation, template_score = refine_rotation(score, axes.T @ fit["rotation"])
        rotation = axes @ rotation
        evidence = float(np.clip((template_score - low) / (high - low), 0, 1))
    confidence = float(np.clip(found["probability"] * evidence * plausible, 0, 1))
    pose = np.eye(4)
    pose[:3, :3] = rotation  # columns left, posterior, superior in the scanner
    closed_form = np.eye(4)
    closed_form[:3, :3] = fit["rotation"]
    pose[:3, 3] = fit["centre"]
    details = {
        "centre_localiser_mm": found["centre"].tolist(),
        "localiser_probability": found["probability"],
        "region_residual": fit["residual"],
        "region_agreement": agreement,
        "sign_margin": fit["sign_margin"],
        "template_score": template_score,
        "template_change_deg": float(np.degrees(rotation_distance(pose, closed_form))),
        "size_plausibility": plausible,
        "orientation_validated": model.orientation_validated,
        "validation_deg": model.validation_deg,
        "precision": resolved_precision(model.precision),
    }
    return PoseEstimate(pose, confidence, float(found["size"]), float(found["volume_ml"]), details)
