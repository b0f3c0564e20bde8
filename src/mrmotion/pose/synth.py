"""Synthetic, domain-randomised training volumes for head pose, made on the fly from tissue label maps.

A :class:`Subject` is a label map in canonical orientation (fetal atlas parcellation, or the adult MNI152 grey/white
matter maps), kept as per-label fractions on a 1.6–2 mm grid. :func:`render` places it at any head pose on any target
grid (one trilinear lookup per target voxel, after an anti-aliasing blur on the source grid), with a random intensity
per tissue. :func:`degrade` then applies what real fast 3-D scans suffer from: thick slices, spin-history dark bands,
bias field, gamma, Rician noise and a partial field of view. :func:`add_clutter` surrounds the head with a uterus,
amniotic fluid, a fetal body and maternal tissue (random ellipsoids), so that the brain must be found first.

All geometry is in scanner LPS mm; target grids are cubes aligned with the scanner axes (:func:`cube_grid`), so a
vector in grid index order is a vector in the scanner frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from mrmotion.errors import MrMotionError
from mrmotion.geometry.prescription import LPS_FROM_RAS
from mrmotion.pose.frames import brain_size_mm, canonical_head_pose

#: grid (mm) on which a fetal atlas's label fractions are kept: 2× the atlases' 0.8 mm.
FETAL_SOURCE_DOWNSAMPLE = 2
#: thickness (mm) of the two shells drawn around a fetal brain: extra-axial CSF / skull, then scalp.
FETAL_SHELLS_MM = (3.0, 7.0)


@dataclass(frozen=True, eq=False)
class Subject:
    """A head in canonical orientation, as per-label fractions.

    fractions : (L, X, Y, Z) float32, fraction of each tissue label per voxel; the first ``brain_labels`` are brain.
    scanner_from_voxel : (4, 4) voxel indices → scanner LPS mm.
    scanner_from_head : (4, 4) the canonical head pose (identity rotation, brain centroid).
    brain_size : length of the brain's longest axis, mm.
    """

    name: str
    fractions: np.ndarray
    brain_labels: int
    scanner_from_voxel: np.ndarray
    scanner_from_head: np.ndarray
    brain_size: float
    #: label fractions blurred for rendering, by blur width (filled by :func:`render`)
    blurred: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def brain(self) -> np.ndarray:
        return self.fractions[: self.brain_labels].sum(axis=0)


def _block_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    shape = [s // factor * factor for s in volume.shape]
    volume = volume[: shape[0], : shape[1], : shape[2]]
    return volume.reshape(shape[0] // factor, factor, shape[1] // factor, factor, shape[2] // factor, factor).mean(
        axis=(1, 3, 5)
    )


def _downsampled_affine(scanner_from_voxel: np.ndarray, factor: int) -> np.ndarray:
    """Affine of a grid whose voxel averages ``factor``³ source voxels (its centre sits between them)."""
    scale = np.diag([factor, factor, factor, 1.0])
    scale[:3, 3] = (factor - 1) / 2.0
    return scanner_from_voxel @ scale


def fetal_atlas_folders(root: str | Path) -> list[Path]:
    """Folders under ``root`` holding ``parcellation.nii.gz`` and ``mask.nii.gz``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise MrMotionError(f"{root}: not a folder of fetal atlases")
    folders = sorted(p.parent for p in root.glob("*/parcellation.nii.gz") if (p.parent / "mask.nii.gz").is_file())
    if not folders:
        raise MrMotionError(f"{root}: no atlas folder with parcellation.nii.gz and mask.nii.gz")
    return folders


def fetal_subject(folder: str | Path) -> Subject:
    """A fetal atlas (parcellation labels 1–8, brain mask) as a subject, with two shells drawn around the brain."""
    import nibabel as nib

    folder = Path(folder)
    labels_image = nib.load(folder / "parcellation.nii.gz")
    labels = np.asanyarray(labels_image.dataobj).astype(np.int16)
    mask = np.asanyarray(nib.load(folder / "mask.nii.gz").dataobj) > 0
    spacing = float(np.abs(np.linalg.det(labels_image.affine[:3, :3])) ** (1 / 3))
    distance = ndimage.distance_transform_edt(~mask) * spacing
    inner, outer = FETAL_SHELLS_MM
    layers = [labels == label for label in range(1, 9)]
    layers[0] = layers[0] | (mask & (labels == 0))  # mask voxels without a label count as the first tissue
    layers += [(distance > 0) & (distance <= inner), (distance > inner) & (distance <= outer)]
    factor = FETAL_SOURCE_DOWNSAMPLE
    fractions = np.stack([_block_mean(layer.astype(np.float32), factor) for layer in layers]).astype(np.float32)
    scanner_from_voxel = _downsampled_affine(LPS_FROM_RAS @ labels_image.affine, factor)
    brain = fractions[:8].sum(axis=0)
    return Subject(
        name=folder.name,
        fractions=fractions,
        brain_labels=8,
        scanner_from_voxel=scanner_from_voxel,
        scanner_from_head=canonical_head_pose(brain, scanner_from_voxel),
        brain_size=brain_size_mm(brain, scanner_from_voxel),
    )


@functools.lru_cache(maxsize=1)
def _mni152_tissues() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The adult MNI152 2009 template (nilearn, embedded) at 2 mm: ``csf``, ``grey``, ``white`` (fractions inside the
    brain mask), ``rest`` (the head outside the brain: the T1 image above 10% of its 99th percentile), ``inside`` (the
    brain mask) and ``t1`` (the T1 image) on one grid, and that grid's RAS affine. Read once per process (the three
    adult subjects share them); the arrays are read-only."""
    from nilearn import datasets

    grey_image = datasets.load_mni152_gm_template(resolution=2)
    grey, white = (
        np.clip(np.asanyarray(image.dataobj, dtype=np.float32), 0, 1)
        for image in (grey_image, datasets.load_mni152_wm_template(resolution=2))
    )
    inside = np.asanyarray(datasets.load_mni152_brain_mask(resolution=2).dataobj) > 0
    t1 = np.asanyarray(datasets.load_mni152_template(resolution=2).dataobj, dtype=np.float32)
    tissues = {
        "csf": np.where(inside, np.clip(1 - grey - white, 0, 1), 0).astype(np.float32),
        "grey": grey * inside,
        "white": white * inside,
        "rest": ((t1 > 0.1 * np.percentile(t1, 99)) & ~inside).astype(np.float32),
        "inside": inside,
        "t1": t1,
    }
    for array in tissues.values():
        array.setflags(write=False)
    return tissues, grey_image.affine


def _adult(name: str, fractions: np.ndarray, brain_labels: int, ras_affine: np.ndarray) -> Subject:
    """An MNI152 subject from its label fractions: the head frame and size of its brain (its first labels above 0.5)."""
    scanner_from_voxel = LPS_FROM_RAS @ ras_affine
    brain = fractions[:brain_labels].sum(axis=0) > 0.5
    return Subject(
        name=name,
        fractions=fractions,
        brain_labels=brain_labels,
        scanner_from_voxel=scanner_from_voxel,
        scanner_from_head=canonical_head_pose(brain, scanner_from_voxel),
        brain_size=brain_size_mm(brain, scanner_from_voxel),
    )


def adult_subject() -> Subject:
    """The adult MNI152 2009 template (nilearn, embedded) at 2 mm: CSF, grey and white matter, rest of the head."""
    tissues, affine = _mni152_tissues()
    fractions = np.stack([tissues[name] for name in ("csf", "grey", "white", "rest")]).astype(np.float32)
    return _adult("mni152_adult", fractions, 3, affine)


#: Where the adult MNI152 brain's regions are, by coordinates in MNI space (RAS mm), for :func:`adult_region_subject`.
#: The template comes with tissue maps only (grey, white matter, brain mask), and the atlases that label its
#: structures are not embedded in any package we depend on (nor freely licensed), so the fetal parcellation's
#: regions are drawn from the tissue maps by rules, coarse but consistent (the region network learns them; the poses
#: are fitted to their centroids and to a template made from the same labels):
#: brainstem: within 13 mm (in y–z) of the line from the midbrain (0, −22, −5) to the medulla (0, −42, −72), |x| < 14;
ADULT_BRAINSTEM_LINE_MM = ((0.0, -22.0, -5.0), (0.0, -42.0, -72.0))
ADULT_BRAINSTEM_RADIUS_MM = 13.0
#: cerebellum: behind y = −38 and below the tentorium, z < −5 − 0.35·|x| − 0.25·max(0, −55 − y);
ADULT_CEREBELLUM_Y_MM = -38.0
#: ventricles: CSF deeper than 10 mm below the brain's surface, |x| < 30, y in [−45, 30], z in [−10, 35];
#: deep grey matter: grey matter deeper than 15 mm, |x| < 30, y in [−35, 25], z in [−12, 22].
ADULT_DEEP_BOX_MM = {"ventricles": ((-30, 30), (-45, 30), (-10, 35)), "deep grey": ((-30, 30), (-35, 25), (-12, 22))}
ADULT_DEPTH_MM = {"ventricles": 10.0, "deep grey": 15.0}


def adult_region_subject() -> Subject:
    """The adult MNI152 2009 template (nilearn, embedded, 2 mm) labelled like the fetal atlases: fractions of
    the fetal parcellation's labels 1–8 (cerebral white matter, ventricles, cerebellum, extra-axial CSF, cortical
    grey matter, deep grey matter, brainstem; no corpus callosum label, it is white matter) drawn from the tissue maps
    by the rules of ``ADULT_*`` above, then the rest of the head (skull, scalp). Trains the region network on an adult
    brain and makes its region template (the template's own T1 image, :func:`adult_t1_subject`, stays unseen)."""
    tissues, affine = _mni152_tissues()
    grey, white, csf, inside = (tissues[name] for name in ("grey", "white", "csf", "inside"))
    spacing = float(np.abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    x, y, z = (affine[:3, :3] @ np.indices(grey.shape).reshape(3, -1) + affine[:3, 3:4]).reshape(3, *grey.shape)
    depth = ndimage.distance_transform_edt(inside) * spacing

    def in_box(box) -> np.ndarray:
        inside_each = [(low <= value) & (value <= high) for value, (low, high) in zip((x, y, z), box, strict=True)]
        return np.all(inside_each, axis=0)

    start, end = (np.array(point) for point in ADULT_BRAINSTEM_LINE_MM)
    along = np.clip(
        ((y - start[1]) * (end - start)[1] + (z - start[2]) * (end - start)[2]) / np.sum((end - start) ** 2), 0, 1
    )
    off = np.hypot(y - (start[1] + along * (end - start)[1]), z - (start[2] + along * (end - start)[2]))
    brainstem = inside & (off < ADULT_BRAINSTEM_RADIUS_MM) & (np.abs(x) < 14) & (z < start[2])
    tentorium = -5.0 - 0.35 * np.abs(x) - 0.25 * np.maximum(0.0, -55.0 - y)
    cerebellum = inside & ~brainstem & (y < ADULT_CEREBELLUM_Y_MM) & (z < tentorium)
    cerebrum = ~(brainstem | cerebellum)
    ventricles = cerebrum & in_box(ADULT_DEEP_BOX_MM["ventricles"]) & (depth > ADULT_DEPTH_MM["ventricles"])
    deep = cerebrum & in_box(ADULT_DEEP_BOX_MM["deep grey"]) & (depth > ADULT_DEPTH_MM["deep grey"])
    tissue = grey + white + csf
    layers = [
        white * cerebrum,  # 1 white matter
        csf * ventricles,  # 2 ventricles
        tissue * cerebellum,  # 3 cerebellum
        csf * (cerebrum & ~ventricles),  # 4 extra-axial CSF
        grey * (cerebrum & ~deep),  # 5 cortical grey matter
        grey * deep,  # 6 deep grey matter
        tissue * brainstem,  # 7 brainstem
        np.zeros_like(grey),  # 8 corpus callosum (in the white matter)
        tissues["rest"],  # the rest of the head
    ]
    return _adult("mni152_adult_regions", np.stack(layers).astype(np.float32), 8, affine)


def adult_t1_subject() -> Subject:
    """The adult MNI152 2009 template's own T1 image (nilearn, embedded, 2 mm: brain, skull, scalp and the top of the
    neck) as one 'tissue' of intensity 1 at its 99th percentile, with the head frame and brain size of
    :func:`adult_subject`: adult test volumes with real contrast (the pose networks never saw a T1 image)."""
    labels = adult_subject()
    t1 = _mni152_tissues()[0]["t1"]
    t1 = np.clip(t1 / np.percentile(t1[t1 > 0], 99), 0, None)[None]
    return Subject("mni152_adult_t1", t1, 1, labels.scanner_from_voxel, labels.scanner_from_head, labels.brain_size)


def cube_grid(centre_mm: np.ndarray, side_mm: float, size: int, axes: np.ndarray | None = None) -> np.ndarray:
    """``scanner_from_voxel`` of a ``size``³ cube of side ``side_mm`` centred at ``centre_mm``, its edges along the
    columns of ``axes`` (3, 3, orthonormal; default: the scanner's LPS axes)."""
    spacing = side_mm / size
    affine = np.eye(4)
    affine[:3, :3] = (np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)) * spacing
    affine[:3, 3] = np.asarray(centre_mm, dtype=np.float64) - affine[:3, :3] @ np.full(3, (size - 1) / 2.0)
    return affine


def grid_points(scanner_from_voxel: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(3, N) scanner coordinates (mm) of every voxel of a grid."""
    index = np.indices(shape, dtype=np.float64).reshape(3, -1)
    return scanner_from_voxel[:3, :3] @ index + scanner_from_voxel[:3, 3:4]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix uniform over SO(3) (a normalised Gaussian quaternion)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(rng.normal(size=4)).as_matrix()


def render(
    subject: Subject,
    scanner_from_head: np.ndarray,
    scanner_from_voxel: np.ndarray,
    shape: tuple[int, int, int],
    intensities: np.ndarray,
    resolution_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place ``subject`` at head pose ``scanner_from_head`` on a target grid.

    Returns the image (tissue intensities mixed by their fractions), the brain fraction and the head fraction on the
    grid, each ``shape`` float32. ``resolution_mm`` sets the isotropic anti-aliasing blur applied on the source grid.
    """
    labels = render_fractions(subject, scanner_from_head, scanner_from_voxel, shape, resolution_mm)
    image = np.tensordot(np.asarray(intensities, dtype=np.float32), labels, axes=1).reshape(shape)
    brain = labels[: subject.brain_labels].sum(axis=0).reshape(shape)
    head = labels.sum(axis=0).reshape(shape)
    image, brain, head = (o.astype(np.float32) for o in (image, brain, head))
    return image, brain, head


def render_fractions(
    subject: Subject,
    scanner_from_head: np.ndarray,
    scanner_from_voxel: np.ndarray,
    shape: tuple[int, int, int],
    resolution_mm: float,
) -> np.ndarray:
    """(L, N) fraction of each of the subject's labels at the N voxels of a target grid, the head at
    ``scanner_from_head``; blurred on the source grid for a resolution of ``resolution_mm`` (see :func:`render`)."""
    moved_from_canonical = scanner_from_head @ np.linalg.inv(subject.scanner_from_head)
    source_from_target = np.linalg.inv(subject.scanner_from_voxel) @ np.linalg.inv(moved_from_canonical)
    source_from_target = source_from_target @ scanner_from_voxel
    index = np.indices(shape, dtype=np.float64).reshape(3, -1)
    coordinates = source_from_target[:3, :3] @ index + source_from_target[:3, 3:4]
    source_spacing = float(np.abs(np.linalg.det(subject.scanner_from_voxel[:3, :3])) ** (1 / 3))
    sigma = max(resolution_mm / 2.355 / source_spacing - 0.5, 0.0)
    return np.stack(
        [ndimage.map_coordinates(volume, coordinates, order=1, cval=0.0) for volume in _blurred(subject, sigma)]
    )


#: blur widths (source voxels) are rounded to this step so that blurred label maps can be reused between renders
SIGMA_STEP = 0.5


def _blurred(subject: Subject, sigma: float) -> np.ndarray:
    """The subject's label fractions blurred by ``sigma`` source voxels (rounded to :data:`SIGMA_STEP`), cached on
    the subject.

    Blurring is linear, so blurring each label once and mixing the interpolated labels with any intensities gives
    the same image as mixing first and blurring after; training draws thousands of contrasts per subject, and the
    blur of the whole source grid was most of a render's time (a 17³ training sample: 0.10 s → 0.023 s).
    """
    sigma = round(sigma / SIGMA_STEP) * SIGMA_STEP
    if sigma not in subject.blurred:
        fractions = subject.fractions
        if sigma > 0:
            fractions = np.stack([ndimage.gaussian_filter(f, sigma, mode="constant") for f in fractions])
        subject.blurred[sigma] = fractions
    return subject.blurred[sigma]


def _ellipsoid(points: np.ndarray, centre: np.ndarray, radii: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    local = rotation.T @ (points - centre[:, None])
    radius = np.sqrt(np.sum((local / radii[:, None]) ** 2, axis=0))
    return np.clip((1.15 - radius) / 0.3, 0.0, 1.0)  # soft edge about 30% of the radius wide


def add_clutter(
    image: np.ndarray,
    head: np.ndarray,
    scanner_from_voxel: np.ndarray,
    brain_centre: np.ndarray,
    brain_size: float,
    rng: np.random.Generator,
    fetal: bool = True,
) -> np.ndarray:
    """Surround a rendered head with random tissue: uterus, amniotic fluid, fetal body and maternal blobs.

    The clutter fills where the head is not (``image + (1 - head) · clutter``), so it never overwrites the head.
    """
    shape = image.shape
    points = grid_points(scanner_from_voxel, shape)
    clutter = np.zeros(points.shape[1], dtype=np.float64)
    if fetal:
        maternal = rng.uniform(0.05, 0.6)
        clutter[:] = maternal
        uterus_centre = brain_centre + rng.normal(0, 0.4 * brain_size, 3)
        uterus = _ellipsoid(points, uterus_centre, brain_size * rng.uniform(1.4, 3.0, 3), random_rotation(rng))
        # the uterus must hold the head: grow it around the brain's centre as needed
        uterus = np.maximum(uterus, _ellipsoid(points, brain_centre, np.full(3, 0.8 * brain_size), np.eye(3)))
        fluid = rng.uniform(0.3, 1.2)
        clutter = clutter * (1 - uterus) + fluid * uterus
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        body_centre = brain_centre + direction * brain_size * rng.uniform(0.9, 1.4)
        body = _ellipsoid(points, body_centre, brain_size * rng.uniform(0.4, 0.9, 3), random_rotation(rng))
        clutter = clutter * (1 - body) + rng.uniform(0.1, 0.8) * body
    else:
        clutter[:] = 0.0
    for _ in range(rng.integers(2, 9)):
        centre = points[:, rng.integers(points.shape[1])]
        blob = _ellipsoid(points, centre, rng.uniform(0.1, 0.6, 3) * brain_size, random_rotation(rng))
        clutter = clutter * (1 - blob) + rng.uniform(0.0, 1.0) * blob
    return (image + (1 - head) * clutter.reshape(shape)).astype(np.float32)


def degrade(
    image: np.ndarray,
    voxel_mm: float,
    rng: np.random.Generator,
    partial_plane: bool = True,
    in_plane_mm: float | None = None,
    thickness_mm: float | None = None,
) -> np.ndarray:
    """What fast 3-D scans do to an image on a grid of ``voxel_mm`` voxels, each with random strength.

    Thick slices (in-plane 2–5 mm, slices up to 8 mm, unless given; along a random scanner axis, sometimes with
    staircase sampling), spin-history dark bands on alternate slices, a smooth multiplicative bias field, gamma,
    Rician noise and, with ``partial_plane``, a field of view that cuts through the head.
    """
    out = image.astype(np.float64)
    shape = out.shape
    axis = int(rng.integers(3))
    in_plane = rng.uniform(2.0, 5.0) if in_plane_mm is None else in_plane_mm
    thickness = rng.uniform(in_plane, 8.0) if thickness_mm is None else thickness_mm
    sigmas = [max(in_plane / 2.355 / voxel_mm, 0.0)] * 3
    sigmas[axis] = thickness / 2.355 / voxel_mm
    out = ndimage.gaussian_filter(out, sigmas, mode="nearest")
    step = max(int(round(thickness / voxel_mm)), 1)
    if step > 1 and rng.random() < 0.5:  # staircase: one value per slice
        index = (np.arange(shape[axis]) // step) * step + step // 2
        out = np.take(out, np.clip(index, 0, shape[axis] - 1), axis=axis)
    if rng.random() < 0.3:  # spin-history bands: interleaved slices darkened
        slices = (np.arange(shape[axis]) * voxel_mm / thickness).astype(int)
        dark = 1 - rng.uniform(0.1, 0.4) * ((slices + rng.integers(2)) % 2)
        view = [1, 1, 1]
        view[axis] = shape[axis]
        out = out * dark.reshape(view)
    coarse = rng.normal(0, rng.uniform(0.0, 0.35), (4, 4, 4))
    out = out * np.exp(
        ndimage.zoom(coarse, [s / 4 for s in shape], order=3, mode="nearest")[tuple(slice(0, s) for s in shape)]
    )
    scale = np.percentile(out, 99.5) or 1.0
    out = np.clip(out / scale, 0, None) ** np.exp(rng.normal(0, 0.25))
    if partial_plane and rng.random() < 0.2:
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        index = np.indices(shape, dtype=np.float64).reshape(3, -1).T - (np.array(shape) - 1) / 2
        keep = index @ normal < rng.uniform(0.15, 0.45) * min(shape)
        out = out * keep.reshape(shape)
    sigma = rng.uniform(0.005, 0.08)
    out = np.sqrt((out + rng.normal(0, sigma, shape)) ** 2 + rng.normal(0, sigma, shape) ** 2)
    return out.astype(np.float32)


def normalise_intensity(volume: np.ndarray) -> np.ndarray:
    """Scale so the 99th percentile of the non-background voxels is 1; clip to [0, 3]. The network's input rule."""
    volume = np.asarray(volume, dtype=np.float32)
    positive = volume[volume > 0]
    if positive.size == 0:
        return np.zeros_like(volume)
    scale = float(np.percentile(positive, 99))
    if scale <= 0:
        return np.zeros_like(volume)
    return np.clip(volume / scale, 0, 3).astype(np.float32)


#: mean T2 intensity of each fetal label in the atlases (relative to the ventricles), then the two shells.
FETAL_T2_CONTRAST = (0.72, 1.0, 0.77, 0.95, 0.57, 0.65, 0.64, 0.56, 0.9, 0.4)


def random_intensities(subject: Subject, rng: np.random.Generator, difficulty: float = 1.0) -> np.ndarray:
    """One random intensity per tissue label, in [0, 1]: fully random (domain randomisation) with probability
    ``difficulty / 2``; otherwise, for fetal subjects, a T2-like contrast with each tissue jittered by up to
    ±0.15·difficulty (subjects without a T2 table always get random intensities)."""
    count = subject.fractions.shape[0]
    if count == len(FETAL_T2_CONTRAST) and rng.random() >= difficulty / 2:
        jitter = 0.15 * difficulty
        return np.clip(np.array(FETAL_T2_CONTRAST) + rng.uniform(-jitter, jitter, count), 0, 1).astype(np.float32)
    return rng.uniform(0.0, 1.0, count).astype(np.float32)


#: side of the region network's cube relative to the brain's longest axis (E(3)-Pose: brain ≈ 60% of the side).
BRAIN_SHARE_OF_CUBE = 0.6


@dataclass(frozen=True)
class RegionSample:
    """A cube around the brain (network input), its brain-region fractions (target) and the truth."""

    volume: np.ndarray  # (n, n, n) float32, normalised
    regions: np.ndarray  # (len(regions.REGIONS), n, n, n) float32, summing to 1 per voxel
    scanner_from_head: np.ndarray
    scanner_from_voxel: np.ndarray


def region_sample(
    subject: Subject,
    rng: np.random.Generator,
    size: int = 32,
    difficulty: float = 1.0,
    centre_jitter: float = 0.05,
    scale_jitter: float = 0.15,
    t2: Subject | None = None,
) -> RegionSample:
    """A fetal head at a random pose (rotation uniform over SO(3)) in a cube around the brain, with the brain
    regions of :mod:`mrmotion.pose.regions` on the same grid.

    ``difficulty`` in [0, 1]: at 0 a T2-like contrast, no clutter and only noise; at 1 random contrasts half of the
    time, clutter 80% of the time and every degradation of :func:`degrade`. The cube's centre is off the brain's by
    ``centre_jitter`` × its side (standard deviation per axis) and its side off the nominal (brain size /
    :data:`BRAIN_SHARE_OF_CUBE`) by a factor uniform in 1 ± ``scale_jitter``, as a localiser's are.
    ``t2``: the subject's own T2 image (:func:`fetal_t2_subject`); the image is then rendered from it (real contrast,
    random shell intensities) instead of from random label intensities; the regions still come from ``subject``.
    """
    from mrmotion.pose.regions import region_fractions

    if subject.fractions.shape[0] < 8 or subject.brain_labels != 8:
        raise MrMotionError(f"{subject.name}: brain regions need a fetal atlas subject (8 parcellation labels)")
    pose = np.eye(4)
    pose[:3, :3] = random_rotation(rng)
    pose[:3, 3] = rng.uniform(-40, 40, 3)
    side = subject.brain_size / BRAIN_SHARE_OF_CUBE * rng.uniform(1 - scale_jitter, 1 + scale_jitter)
    grid = cube_grid(pose[:3, 3] + rng.normal(0, centre_jitter * side, 3), side, size)
    shape = (size,) * 3
    voxel = side / size
    fractions = render_fractions(subject, pose, grid, shape, max(voxel, 2.0))
    if t2 is None:
        intensities = random_intensities(subject, rng, difficulty)
        image = np.tensordot(intensities, fractions, axes=1).reshape(shape).astype(np.float32)
    else:
        image, _, _ = render(t2, pose, grid, shape, t2_intensities(t2, rng), max(voxel, 2.0))
    if rng.random() < 0.8 * difficulty:
        head = fractions.sum(axis=0).reshape(shape)
        image = add_clutter(image, head, grid, pose[:3, 3], subject.brain_size, rng)
    if rng.random() < difficulty:
        image = degrade(image, voxel, rng)
    else:
        image = image + rng.normal(0, 0.02, shape).astype(np.float32)
    head_points = pose[:3, :3].T @ (grid_points(grid, shape) - pose[:3, 3:4])
    regions = region_fractions(fractions, head_points).reshape(-1, *shape)
    return RegionSample(normalise_intensity(np.clip(image, 0, None)), regions, pose, grid)


def subject_layout(subject: Subject):
    """The subject's :class:`~mrmotion.pose.regions.AtlasLayout` (region centroids and brain second moments in its
    head frame, in units of its brain size)."""
    from mrmotion.pose.regions import AtlasLayout

    points = grid_points(subject.scanner_from_voxel, subject.fractions.shape[1:]) - subject.scanner_from_head[:3, 3:4]
    return AtlasLayout.of_atlas(subject.fractions.reshape(subject.fractions.shape[0], -1), points, subject.brain_size)


@dataclass(frozen=True)
class LocaliserSample:
    """A whole field of view (network input) and the brain fraction on the same grid (target)."""

    volume: np.ndarray
    brain: np.ndarray
    scanner_from_voxel: np.ndarray
    scanner_from_head: np.ndarray


def localiser_sample(
    subject: Subject, rng: np.random.Generator, size: int = 48, fetal: bool = True, t2: Subject | None = None
) -> LocaliserSample:
    """A random pose inside a field of view 1.5–5× the brain's size (adult: 1.1–2×), the brain anywhere inside it.

    ``t2``: the subject's own T2 image (:func:`fetal_t2_subject`); the image is then rendered from it (real contrast,
    random shell intensities, as :func:`scout_volume` does) instead of from random label intensities, and the brain
    target still comes from ``subject``'s labels."""
    pose = np.eye(4)
    pose[:3, :3] = random_rotation(rng)
    pose[:3, 3] = rng.uniform(-40, 40, 3)
    side = subject.brain_size * (rng.uniform(1.5, 5.0) if fetal else rng.uniform(1.1, 2.0))
    room = max(side / 2 - 0.6 * subject.brain_size, 0.0)
    centre = pose[:3, 3] + rng.uniform(-room, room, 3)
    grid = cube_grid(centre, side, size)
    voxel = side / size
    resolution = max(voxel, 2.0)
    if t2 is None:
        image, brain, head = render(subject, pose, grid, (size,) * 3, random_intensities(subject, rng), resolution)
    else:
        image, _, head = render(t2, pose, grid, (size,) * 3, t2_intensities(t2, rng), resolution)
        labels = render_fractions(subject, pose, grid, (size,) * 3, resolution)
        brain = labels[: subject.brain_labels].sum(axis=0).reshape((size,) * 3).astype(np.float32)
    if rng.random() < 0.9:
        image = add_clutter(image, head, grid, pose[:3, 3], subject.brain_size, rng, fetal=fetal)
    volume = normalise_intensity(degrade(image, voxel, rng, partial_plane=False))
    return LocaliserSample(volume, brain, grid, pose)


def moved_voxels(data: np.ndarray, scanner_from_voxel: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """The volume's content moved by the rigid ``motion`` (4, 4; scanner mm) and resampled onto its own grid, as
    software that reorients a volume writes it: trilinear, zero where the moved field of view no longer covers the
    grid. The moved volume at voxel v is the volume at grid⁻¹ · motion⁻¹ · grid · v."""
    source = np.linalg.inv(scanner_from_voxel) @ np.linalg.inv(motion) @ scanner_from_voxel
    return ndimage.affine_transform(data, source[:3, :3], source[:3, 3], order=1)


def with_turned_field(sample: LocaliserSample, rng: np.random.Generator, attempts: int = 10) -> LocaliserSample:
    """The sample as resampling software leaves a scan acquired on a grid turned against this one: the voxels
    outside the acquired box are exactly zero (and the rest re-normalised, as the networks' input rule ignores
    zeros).

    The acquired box has the sample cube's sides × 0.8–1.3 each, turned by a rotation uniform over SO(3) about a
    point up to 30% of the side from the cube's centre (volumes are often turned about the brain, which may lie off
    their centre); it is drawn again (up to ``attempts`` times) until it keeps
    at least 95% of the brain, else the sample is returned unchanged. Without this the localiser, trained only on
    fields of view that fill its cube, took a zero-filled corner's edge for the brain's (40–100% of the poses of
    rotated-and-resampled held-out scouts failed)."""
    shape = np.array(sample.volume.shape)
    index = np.indices(sample.volume.shape, dtype=np.float64).reshape(3, -1).T - (shape - 1) / 2
    for _ in range(attempts):
        rotation = random_rotation(rng)
        half = shape / 2 * rng.uniform(0.8, 1.3, 3)
        centre = rng.uniform(-0.3, 0.3, 3) * shape
        keep = np.all(np.abs((index - centre) @ rotation) <= half, axis=1).reshape(sample.volume.shape)
        if float(sample.brain[keep].sum()) >= 0.95 * float(sample.brain.sum()):
            return replace(sample, volume=normalise_intensity(sample.volume * keep))
    return sample


def fetal_t2_subject(folder: str | Path) -> tuple[Subject, Subject]:
    """A fetal atlas twice: as labels (:func:`fetal_subject`), and as its own T2 image (``srr.nii.gz``, one 'tissue'
    of intensity 1 at the 99th percentile) plus the two shells, for test volumes with real contrast."""
    import nibabel as nib

    labels = fetal_subject(folder)
    t2 = np.asanyarray(nib.load(Path(folder) / "srr.nii.gz").dataobj).astype(np.float32)
    positive = t2[t2 > 0]
    if positive.size == 0:
        raise MrMotionError(f"{folder}/srr.nii.gz is empty")
    t2 = _block_mean(t2 / np.percentile(positive, 99), FETAL_SOURCE_DOWNSAMPLE)
    fractions = np.concatenate([t2[None], labels.fractions[8:]]).astype(np.float32)
    image = Subject(labels.name, fractions, 1, labels.scanner_from_voxel, labels.scanner_from_head, labels.brain_size)
    return labels, image


def t2_intensities(t2: Subject, rng: np.random.Generator) -> np.ndarray:
    """Intensities for a T2 subject (:func:`fetal_t2_subject`): 1 for its T2 image, random in [0.1, 0.8] for the
    two shells around the brain."""
    return np.array([1.0, *rng.uniform(0.1, 0.8, t2.fractions.shape[0] - 1)], np.float32)


def scout_volume(
    t2: Subject,
    pose: np.ndarray,
    rng: np.random.Generator,
    voxel_mm: float = 3.0,
    fov_factor: tuple[float, float] = (1.8, 3.0),
    clutter: bool = True,
    degraded: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """A fast 3-D scout of a T2 subject (:func:`fetal_t2_subject`; or the adult :func:`adult_t1_subject`, with
    ``clutter=False``) at head pose ``pose``: isotropic ``voxel_mm`` voxels, a field of view ``fov_factor`` × the
    brain's size with the brain anywhere inside, clutter around the head (a uterus, fluid, a fetal body, maternal
    tissue; ``clutter=False``: none), slices ``voxel_mm``–1.5×``voxel_mm`` thick, bias field, gamma, bands and noise
    (``degraded=False``: none of these, the rendered image as it is). Returns (data, grid)."""
    side = t2.brain_size * rng.uniform(*fov_factor)
    size = int(round(side / voxel_mm))
    room = max(side / 2 - 0.6 * t2.brain_size, 0.0)
    grid = cube_grid(pose[:3, 3] + rng.uniform(-room, room, 3), size * voxel_mm, size)
    image, _, head = render(t2, pose, grid, (size,) * 3, t2_intensities(t2, rng), voxel_mm)
    if clutter:
        image = add_clutter(image, head, grid, pose[:3, 3], t2.brain_size, rng)
    if degraded:
        image = degrade(
            image,
            voxel_mm,
            rng,
            partial_plane=False,
            in_plane_mm=voxel_mm,
            thickness_mm=rng.uniform(voxel_mm, 1.5 * voxel_mm),
        )
    return (image * 1000).astype(np.float32), grid
