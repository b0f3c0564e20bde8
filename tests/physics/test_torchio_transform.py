"""KSpaceMotion: our k-space motion simulator as a TorchIO transform (Compose, history replay, seeds, errors)."""

from __future__ import annotations

import numpy as np
import pytest

tio = pytest.importorskip("torchio")
torch = pytest.importorskip("torch")

from mrmotion.errors import MrMotionError  # noqa: E402
from mrmotion.geometry.parameters import transform_from_rotvec  # noqa: E402
from mrmotion.physics.motion_models import FAMILIES, SEVERITIES  # noqa: E402
from mrmotion.physics.torchio_transform import AppliedKSpaceMotion, KSpaceMotion  # noqa: E402
from mrmotion.physics.trajectory import MotionTrajectory  # noqa: E402

STILL = MotionTrajectory.constant(np.eye(4))


def _volume(channels: int = 1) -> torch.Tensor:
    """A 32×32×16 block phantom with texture, (C, X, Y, Z) float32."""
    generator = torch.Generator().manual_seed(0)
    data = 0.2 * torch.rand(channels, 32, 32, 16, generator=generator)
    data[:, 8:24, 6:26, 4:12] += 1.0
    data[:, 12:18, 10:14, 6:10] += 0.5
    return data


def _slice() -> torch.Tensor:
    """A 64×64 2-D phantom, TorchIO layout (1, X, Y, 1)."""
    data = torch.zeros(1, 64, 64, 1)
    data[0, 16:48, 12:52, 0] = 1.0
    data[0, 24:32, 20:40, 0] = 2.0
    return data


AFFINE_3D = np.array([[2.0, 0, 0, -30], [0, 2.0, 0, 10], [0, 0, 3.0, 5], [0, 0, 0, 1]])


def _subject_3d() -> tio.Subject:
    data = _volume()
    return tio.Subject(
        t1=tio.ScalarImage(tensor=data, affine=AFFINE_3D),
        seg=tio.LabelMap(tensor=(data > 0.9).to(torch.int16), affine=AFFINE_3D),
    )


def _subject_2d() -> tio.Subject:
    return tio.Subject(image=tio.ScalarImage(tensor=_slice()))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def test_compose_with_label_map_changes_only_the_scalar_image():
    subject = _subject_3d()
    transform = tio.Compose([KSpaceMotion(severity="moderate", family="drift", seed=3)])
    out = transform(subject)
    assert out.t1.data.shape == subject.t1.data.shape and out.t1.data.dtype == torch.float32
    np.testing.assert_array_equal(out.t1.affine, subject.t1.affine)
    assert torch.equal(out.seg.data, subject.seg.data)  # LabelMap untouched
    assert 0.01 < _relative(out.t1.data, subject.t1.data) < 1.0  # corrupted, not destroyed
    assert torch.equal(subject.t1.data, _volume())  # input not modified (TorchIO copies)


def test_2d_image_in_compose_keeps_shape_and_affine():
    affine = np.diag([0.9, 1.1, 4.0, 1.0])
    subject = tio.Subject(image=tio.ScalarImage(tensor=_slice(), affine=affine))
    out = tio.Compose([tio.RescaleIntensity(out_min_max=(0, 1)), KSpaceMotion(severity="severe", seed=1)])(subject)
    assert out.image.data.shape == (1, 64, 64, 1) and out.image.data.dtype == torch.float32
    np.testing.assert_array_equal(out.image.affine, affine)
    assert _relative(out.image.data, out.history[0](subject).image.data) > 0.01
    assert [type(t).__name__ for t in out.get_applied_transforms()] == ["RescaleIntensity", "AppliedKSpaceMotion"]


def test_same_seed_gives_the_same_bytes():
    subject = _subject_2d()
    first = KSpaceMotion(severity="moderate", seed=11, snr_db=30)(subject)
    second = KSpaceMotion(severity="moderate", seed=11, snr_db=30)(subject)
    other = KSpaceMotion(severity="moderate", seed=12, snr_db=30)(subject)
    assert torch.equal(first.image.data, second.image.data)
    assert not torch.equal(first.image.data, other.image.data)


def test_torch_manual_seed_reproduces_a_drawn_seed():
    subject = _subject_2d()
    transform = KSpaceMotion(severity="severe")
    torch.manual_seed(42)
    first = transform(subject)
    torch.manual_seed(42)
    second = transform(subject)
    assert torch.equal(first.image.data, second.image.data)
    seed = first.get_applied_transforms()[0].seed["image"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert transform.seed is None  # the drawn seed is recorded in the history, not stored on the transform


def test_history_records_what_was_applied_and_replays_byte_for_byte():
    subject = _subject_3d()
    torch.manual_seed(7)
    out = tio.Compose([KSpaceMotion(severity="severe", output="complex")])(subject)
    (applied,) = out.get_applied_transforms()
    assert isinstance(applied, AppliedKSpaceMotion) and applied.arguments_are_dict()
    assert applied.severity == {"t1": "severe"} and applied.family["t1"] in FAMILIES
    assert applied.states["t1"] >= 1
    preset = SEVERITIES["severe"]
    assert 0 < applied.max_rotation_deg["t1"] <= preset["max_rotation_deg"] + 1e-9
    assert 0 <= applied.max_translation_mm["t1"] <= preset["max_translation_mm"] + 1e-9
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.t1.data, out.t1.data)
    assert torch.equal(replayed.seg.data, subject.seg.data)
    # The recorded measurements guard the replay: a different motion is refused, not silently applied.
    arguments = dict(out.applied_transforms[0][1])
    arguments["states"] = {"t1": applied.states["t1"] + 1}
    with pytest.raises(MrMotionError, match="states"):
        AppliedKSpaceMotion(**arguments)(subject)


def test_zero_motion_without_noise_returns_the_input():
    subject = _subject_3d()
    out = KSpaceMotion(motion=STILL, seed=0)(subject)
    assert _relative(out.t1.data, subject.t1.data) < 1e-5
    out = KSpaceMotion(motion=STILL, seed=0, output="complex", coils=4, coil_model="exact")(_subject_2d())
    assert out.image.data.shape == (2, 64, 64, 1)
    assert _relative(out.image.data[:1], _slice()) < 1e-5
    assert float(out.image.data[1].abs().max()) < 1e-5 * float(_slice().abs().max())


@pytest.mark.parametrize("reference", ["centre", "energy", "gradient"])
def test_centre_and_energy_references_make_a_constant_pose_no_motion_at_all(reference):
    shifted = MotionTrajectory.constant(transform_from_rotvec(np.array([0.0, 0.0, 0.2]), np.array([3.0, -2.0, 0.0])))
    start = KSpaceMotion(motion=shifted, seed=0, coils=4, coil_model="exact")(_subject_2d())
    moved = KSpaceMotion(motion=shifted, seed=0, coils=4, coil_model="exact", reference=reference)(_subject_2d())
    assert _relative(moved.image.data, _slice()) < 1e-5
    assert _relative(start.image.data, _slice()) > 0.1
    recorded = moved.history[-1]
    assert recorded.max_rotation_deg["image"] < 1e-6 and recorded.max_translation_mm["image"] < 1e-6


@pytest.mark.parametrize("reference", ["energy", "gradient"])
def test_energy_reference_of_a_3d_volume_makes_a_constant_pose_no_motion(reference):
    shifted = MotionTrajectory.constant(transform_from_rotvec(np.array([0.1, -0.05, 0.2]), np.array([3.0, -2.0, 4.0])))
    out = KSpaceMotion(motion=shifted, seed=0, reference=reference)(_subject_3d())
    assert _relative(out.t1.data, _volume()) < 1e-5


def test_gradient_reference_is_nearer_the_corrupted_image_than_energy():
    """Weighting each sample's pose by |k|² |s(k)|² (first-order least squares) brings the clean image nearer the
    corrupted one than the energy weighting, which over-weighs the low frequencies a pose offset hardly changes.
    On a brain slice (MNI152, 2 mm), whose energy is at low frequencies, unlike the blocky phantom's."""
    from nilearn.datasets import load_mni152_template

    brain = torch.from_numpy(load_mni152_template(resolution=2).get_fdata()[None, :, :, 45, None]).float()
    subject = tio.Subject(image=tio.ScalarImage(tensor=brain, affine=np.diag([2.0, 2.0, 2.0, 1.0])))
    errors = {"energy": [], "gradient": []}
    for seed, family in enumerate(("drift", "periodic", "sudden") * 2):
        for reference in errors:
            transform = KSpaceMotion("moderate", family, "interleaved", shots=4, seed=seed, reference=reference)
            errors[reference].append(_relative(transform(subject).image.data, brain))
    assert np.mean(errors["gradient"]) < 0.97 * np.mean(errors["energy"]), errors


def test_energy_reference_is_the_pose_the_corrupted_image_shows():
    """Interleaved shots under drift: the centre line comes from one shot, its neighbours (of similar energy) from
    the others. The energy-weighted pose is nearer the corrupted image than the centre line's pose."""
    errors = {}
    for reference in ("start", "centre", "energy"):
        transform = KSpaceMotion("moderate", "drift", "interleaved", shots=4, seed=4, reference=reference)
        errors[reference] = _relative(transform(_subject_2d()).image.data, _slice())
    assert errors["energy"] < 0.85 * errors["centre"] and errors["energy"] < 0.85 * errors["start"], errors
    with pytest.raises(MrMotionError, match="reference must be one of"):
        KSpaceMotion(reference="middle")


def test_left_handed_grid_matches_its_right_handed_twin():
    data = _volume()
    left = np.diag([-2.0, 2.0, 3.0, 1.0])  # LAS: left-handed in LPS too
    twin = left @ np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, -1, 15], [0, 0, 0, 1]])  # same voxels, z reversed
    transform = KSpaceMotion(severity="moderate", family="drift", seed=5)
    out_left = transform(tio.ScalarImage(tensor=data, affine=left))
    out_twin = transform(tio.ScalarImage(tensor=data.flip(-1), affine=twin))
    assert _relative(out_left.data, data) > 0.01
    torch.testing.assert_close(out_left.data, out_twin.data.flip(-1), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out_left.affine, left)
    still = KSpaceMotion(motion=STILL, seed=0)(tio.ScalarImage(tensor=data, affine=left))
    assert _relative(still.data, data) < 1e-5


def test_channels_share_the_motion():
    data = _volume(1)
    image = tio.ScalarImage(tensor=torch.cat([data, 3.0 * data]), affine=AFFINE_3D)
    out = KSpaceMotion(severity="moderate", family="drift", seed=2, coils=4)(image)
    assert out.data.shape == (2, 32, 32, 16)
    torch.testing.assert_close(out.data[1], 3.0 * out.data[0], rtol=1e-5, atol=1e-5)
    complex_out = KSpaceMotion(severity="moderate", family="drift", seed=2, coils=4, output="complex")(image)
    assert complex_out.data.shape == (4, 32, 32, 16)
    magnitude = torch.hypot(complex_out.data[0::2], complex_out.data[1::2])
    torch.testing.assert_close(magnitude, out.data, rtol=1e-5, atol=1e-5)


def test_stronger_severity_gives_larger_error():
    subject = _subject_2d()
    reference = subject.image.data
    errors = {}
    for level in SEVERITIES:
        per_seed = [_relative(KSpaceMotion(severity=level, seed=s)(subject).image.data, reference) for s in range(5)]
        errors[level] = float(np.median(per_seed))
    assert errors["light"] < errors["moderate"] < errors["severe"], errors


def test_exclude_leaves_an_image_untouched():
    data = _slice()
    subject = tio.Subject(a=tio.ScalarImage(tensor=data), b=tio.ScalarImage(tensor=data))
    out = KSpaceMotion(severity="severe", seed=1, exclude=["b"])(subject)
    assert torch.equal(out.b.data, data) and not torch.equal(out.a.data, data)
    assert list(out.get_applied_transforms()[0].seed) == ["a"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"severity": "huge"}, "severity"),
        ({"severity": "huge", "motion": STILL}, "severity"),
        ({"order": "spiral"}, "order"),
        ({"output": "phase"}, "output"),
        ({"coils": 0}, "coils"),
        ({"coils": -2}, "coils"),
        ({"coils": 2.5}, "coils"),
        ({"shots": 4}, "shots"),
        ({"family": "jitter"}, "family"),
        ({"coil_model": "fixed"}, "coil_model"),
        ({"snr_db": float("nan")}, "snr_db"),
        ({"seed": -1}, "seed"),
        ({"motion": np.eye(4)}, "motion"),
    ],
)
def test_bad_arguments_raise_a_clear_error(arguments, message):
    with pytest.raises(MrMotionError, match=message):
        KSpaceMotion(**arguments)


def test_nan_image_raises_a_clear_error():
    data = _slice()
    data[0, 3, 4, 0] = float("nan")
    with pytest.raises(MrMotionError, match=r"'image' has 1 NaN"):
        KSpaceMotion(seed=0)(tio.Subject(image=tio.ScalarImage(tensor=data)))


def test_applied_transform_rejects_mixed_dict_arguments():
    with pytest.raises(MrMotionError, match="dict"):
        AppliedKSpaceMotion(seed={"image": 1}, severity="light")
