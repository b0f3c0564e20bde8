"""`mrmotion simulate` and `mrmotion recon` end to end on small images, and on bad input."""

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from mrmotion.cli import app
from mrmotion.io.kspace_h5 import read_kspace
from mrmotion.io.motion_csv import read_motion_csv
from tests.helpers import save_with_sform_only

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def phantom(shape):
    axes = [np.linspace(-1, 1, n) for n in shape]
    grids = np.meshgrid(*axes, indexing="ij")
    radius = np.sqrt(sum((g / 0.7) ** 2 for g in grids))
    return (np.clip(1.2 - radius, 0, 1) * (1 + 0.3 * np.cos(4 * grids[0]))).astype(np.float32)


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    folder = tmp_path_factory.mktemp("volume")
    affine = np.array([[2.0, 0, 0, -22], [0, 2.0, 0, -18], [0, 0, 3.0, -20], [0, 0, 0, 1]])
    path = folder / "phantom.nii.gz"
    nib.save(nib.Nifti1Image(phantom((22, 18, 12)), affine), path)
    return path


def nrmse(path, reference):
    image = np.abs(np.asarray(nib.load(path).dataobj))
    mask = reference > 0.05 * reference.max()
    return np.linalg.norm((image - reference)[mask]) / np.linalg.norm(reference[mask])


def test_simulate_then_recon_with_and_without_motion(volume, tmp_path):
    out = tmp_path / "sim"
    result = invoke(
        "simulate",
        volume,
        "-o",
        out,
        "--random",
        "severe",
        "--seed",
        "3",
        "--order",
        "interleaved",
        "--shots",
        "4",
        "--coils",
        "4",
    )
    assert result.exit_code == 0, result.output
    for name in ("corrupted.nii.gz", "corrupted_magnitude.nii.gz", "kspace.h5", "motion.csv", "simulation.png"):
        assert (out / name).stat().st_size > 0
    reference = np.asarray(nib.load(volume).dataobj)
    np.testing.assert_allclose(nib.load(out / "corrupted.nii.gz").affine, nib.load(volume).affine, atol=1e-5)
    kspace = read_kspace(out / "kspace.h5")
    assert kspace.data.shape == (4, reference.size) and kspace.coil_maps is not None
    # the exact coil model says at how many poses it evaluated the coils, and with what tolerance
    clusters, tolerance = kspace.extra["coil_clusters"], kspace.extra["coil_cluster_tol_mm"]
    assert clusters > 1 and tolerance >= kspace.extra["coil_pose_rms_mm"] > 0, kspace.extra
    assert f"evaluated at {clusters} poses" in " ".join(result.output.split())
    motion = read_motion_csv(out / "motion.csv")
    assert motion.state_index(kspace.sampling.time_s).max() == len(motion) - 1
    assert invoke("recon", out / "kspace.h5", "--motion", out / "motion.csv", "-o", out / "fixed.nii.gz").exit_code == 0
    assert invoke("recon", out / "kspace.h5", "-o", out / "naive.nii.gz").exit_code == 0
    corrupted, naive, fixed = (
        nrmse(out / n, reference) for n in ("corrupted_magnitude.nii.gz", "naive.nii.gz", "fixed.nii.gz")
    )
    assert corrupted > 0.05 and naive > 0.05
    assert fixed < corrupted / 3, (fixed, corrupted)
    # --coil-model reaches the operator: the approximation "coils move with the head" gives a different image
    # (severe motion with 4 coils fixed in the scanner), still far better than no motion correction
    moving = out / "moving.nii.gz"
    args = ("recon", out / "kspace.h5", "--motion", out / "motion.csv", "--coil-model", "moving", "-o", moving)
    assert invoke(*args).exit_code == 0
    approximate = nrmse(moving, reference)
    assert not np.allclose(nib.load(moving).get_fdata(), nib.load(out / "fixed.nii.gz").get_fdata(), rtol=1e-3)
    assert approximate < corrupted / 2, (approximate, corrupted)
    # --exact-iterations 0 stops after the moving model; --no-crop reconstructs the whole field of view
    whole = out / "whole.nii.gz"
    args = ("recon", out / "kspace.h5", "--motion", out / "motion.csv", "--exact-iterations", "0", "--no-crop")
    assert invoke(*args, "-o", whole).exit_code == 0
    assert nrmse(whole, reference) < corrupted / 2
    _fails([*args[:-3], "--exact-iterations=-1", "-o", out / "bad.nii.gz"], "exact-iterations", out)


def test_simulate_coil_clusters_caps_the_poses_of_the_exact_coil_model(volume, tmp_path):
    common = ("--random", "severe", "--seed", "5", "--order", "random", "--coils", "3")
    assert invoke("simulate", volume, "-o", tmp_path / "default", *common).exit_code == 0
    result = invoke("simulate", volume, "-o", tmp_path / "capped", *common, "--coil-clusters", "2")
    assert result.exit_code == 0, result.output
    default, capped = (read_kspace(tmp_path / name / "kspace.h5") for name in ("default", "capped"))
    assert default.extra["coil_clusters"] > 2 and default.extra["coil_clusters_cap"] is None
    assert capped.extra["coil_clusters"] <= 2 and capped.extra["coil_clusters_cap"] == 2
    # fewer coil poses: a different (less accurate) coil weighting, the same motion
    assert not np.allclose(capped.data, default.data, rtol=1e-3)
    _fails(["simulate", volume, "-o", tmp_path / "zero", "--coil-clusters", "0"], "--coil-clusters", tmp_path)
    args = ["simulate", volume, "-o", tmp_path / "slices", "--mode", "2d", "--coil-clusters", "4"]
    _fails(args, "multi-slice", tmp_path)


def test_simulate_2d_slice_and_noise(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(phantom((32, 28)), np.diag([1.5, 1.5, 4.0, 1.0])), path)
    result = invoke("simulate", path, "-o", tmp_path / "out", "--random", "moderate", "--snr", "25", "--coils", "3")
    assert result.exit_code == 0, result.output
    kspace = read_kspace(tmp_path / "out" / "kspace.h5")
    assert kspace.sampling.mode == "2d" and kspace.noise_std > 0
    assert np.asarray(nib.load(tmp_path / "out" / "corrupted_magnitude.nii.gz").dataobj).shape == (32, 28)


def _fails(args, message, folder):
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert after == before  # nothing the user had was touched, and nothing new made (not even an empty folder)


def test_simulate_bad_input(volume, tmp_path):
    nan = tmp_path / "nan.nii.gz"
    data = phantom((10, 10, 6))
    data[2, 3, 4] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), nan)
    _fails(["simulate", nan, "-o", tmp_path / "o1"], "NaN", tmp_path)
    four = tmp_path / "four.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5, 3), np.float32), np.eye(4)), four)
    _fails(["simulate", four, "-o", tmp_path / "o2"], "2-D or 3-D", tmp_path)
    zeros = tmp_path / "zeros.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 6), np.float32), np.eye(4)), zeros)
    _fails(["simulate", zeros, "-o", tmp_path / "o2", "--snr", "20"], "all zeros: nothing to simulate", tmp_path)
    _fails(["simulate", volume, "-o", tmp_path / "o3", "--coils", "0"], "--coils", tmp_path)
    _fails(["simulate", volume, "-o", tmp_path / "o4", "--random", "wild"], "light", tmp_path)
    _fails(["simulate", tmp_path / "missing.nii.gz", "-o", tmp_path / "o5"], "missing.nii.gz", tmp_path)
    short = tmp_path / "short.csv"
    short.write_text("time_s,tx_mm,ty_mm,tz_mm,qx,qy,qz,qw\n0,0,0,0,0,0,0,1\n0.5,1,0,0,0,0,0,1\n")
    _fails(["simulate", volume, "-o", tmp_path / "o6", "--motion", short], "not extrapolated", tmp_path)
    _fails(["simulate", volume, "-o", tmp_path / "o6", "--snr", "nan"], "finite number of decibels", tmp_path)
    flat = tmp_path / "flat.nii.gz"
    save_with_sform_only(flat, phantom((10, 10, 6)))
    _fails(["simulate", flat, "-o", tmp_path / "o6"], "the affine is singular", tmp_path)
    result = invoke("simulate", volume, "-o", tmp_path / "o7", "--snr", "loud")
    assert result.exit_code == 2 and "Invalid value for '--snr'" in result.output
    # An output folder that holds the input under an output's name: refused, the input kept.
    inside = tmp_path / "inside"
    inside.mkdir()
    target = inside / "corrupted.nii.gz"
    target.write_bytes(volume.read_bytes())
    _fails(["simulate", target, "-o", inside], "also an input", tmp_path)


def test_recon_bad_input(volume, tmp_path):
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file")
    _fails(["recon", broken, "-o", tmp_path / "x.nii.gz"], "broken.h5", tmp_path)
    h5py = pytest.importorskip("h5py")
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as handle:
        handle.create_group("dataset")
    _fails(["recon", empty, "-o", tmp_path / "x.nii.gz"], "empty.h5", tmp_path)
    _fails(["recon", broken, "-o", tmp_path / "x.png"], ".nii", tmp_path)


def test_recon_of_an_ismrmrd_file_from_another_tool(volume, tmp_path):
    """The simulated scan as another tool would store it (standard fields only, no coil maps): `mrmotion recon`
    reads it, estimates the coils, puts the image where the input was, and uses known motion as it does for the
    file with its exact copies and coil maps."""
    from tests.io.test_ismrmrd_cartesian import _as_foreign

    out = tmp_path / "sim"
    args = ("--random", "severe", "--seed", "4", "--order", "interleaved", "--shots", "3", "--coils", "4")
    assert invoke("simulate", volume, "-o", out, *args).exit_code == 0
    foreign = _as_foreign(out / "kspace.h5", tmp_path / "foreign.h5")
    assert read_kspace(foreign).coil_maps is None
    reference = np.asarray(nib.load(volume).dataobj)
    images = {}
    for source, kspace in (("foreign", foreign), ("ours", out / "kspace.h5")):
        for name, extra in (("naive", ()), ("fixed", ("--motion", out / "motion.csv"))):
            path = tmp_path / f"{source}_{name}.nii.gz"
            result = invoke("recon", kspace, *extra, "-o", path)
            assert result.exit_code == 0, result.output
            np.testing.assert_allclose(nib.load(path).affine, nib.load(volume).affine, atol=1e-4)
            images[source, name] = np.abs(np.asarray(nib.load(path).dataobj))
    # the estimated coil maps (from the corrupted data) leave a smooth intensity bias: ~4.5% here, 0.2% with the
    # file's own maps; the reader itself is exact (tests/io/test_ismrmrd_cartesian.py)
    assert nrmse(tmp_path / "foreign_fixed.nii.gz", reference) < 0.08
    assert nrmse(tmp_path / "ours_fixed.nii.gz", reference) < 0.01
    assert not np.allclose(images["foreign", "fixed"], images["foreign", "naive"], rtol=1e-3)  # the motion was used


def test_recon_estimates_the_motion_of_a_multishot_slice(tmp_path):
    """`recon --estimate-motion`: the motion comes from the data and the image is much closer to the still object
    than the plain reconstruction; the estimate is written as a motion CSV that `recon --motion` takes."""
    rng = np.random.default_rng(4)
    axes = np.meshgrid(*(np.arange(n) - n / 2 for n in (64, 56)), indexing="ij")
    image = phantom((64, 56))
    for _ in range(8):  # structure to align on
        centre, size = rng.uniform(-14, 14, 2), rng.uniform(2, 5)
        image += 0.6 * np.exp(-((axes[0] - centre[0]) ** 2 + (axes[1] - centre[1]) ** 2) / (2 * size**2))
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(image.astype(np.float32), np.diag([3.0, 3.0, 4.0, 1.0])), path)
    args = ["--random", "moderate", "--seed", "2", "--order", "interleaved", "--shots", "4", "--coils", "4"]
    assert invoke("simulate", path, "-o", tmp_path / "sim", *args).exit_code == 0
    kspace = tmp_path / "sim" / "kspace.h5"
    assert invoke("recon", kspace, "-o", tmp_path / "plain.nii.gz").exit_code == 0
    result = invoke("recon", kspace, "-o", tmp_path / "estimated.nii.gz", "--estimate-motion")
    assert result.exit_code == 0, result.output
    estimated = read_motion_csv(tmp_path / "estimated_motion.csv")
    assert len(estimated) == 4
    assert "4 motion states; from the first: largest turn" in result.output
    np.testing.assert_allclose(estimated.transforms[0], np.eye(4), atol=1e-9)
    true_motion = read_motion_csv(tmp_path / "sim" / "motion.csv")
    assert np.abs(true_motion.transforms[:, :3, 3]).max() > 1.0  # the scan did move
    plain, corrected = nrmse(tmp_path / "plain.nii.gz", image), nrmse(tmp_path / "estimated.nii.gz", image)
    assert corrected < plain / 3, (corrected, plain)
    # the estimate is a motion CSV like any other
    again = invoke("recon", kspace, "-o", tmp_path / "again.nii.gz", "--motion", tmp_path / "estimated_motion.csv")
    assert again.exit_code == 0, again.output


def test_recon_estimate_motion_bad_input(volume, tmp_path):
    out = tmp_path / "sim3d"
    assert invoke("simulate", volume, "-o", out, "--coils", "2").exit_code == 0
    kspace = out / "kspace.h5"
    _fails(["recon", kspace, "-o", tmp_path / "x.nii.gz", "--estimate-motion"], "single 2-D slices", tmp_path)
    motion = out / "motion.csv"
    args = ["recon", kspace, "-o", tmp_path / "x.nii.gz", "--estimate-motion", "--motion", motion]
    _fails(args, "not both", tmp_path)
    args = ["recon", kspace, "-o", tmp_path / "x.nii.gz", "--estimate-motion", "--motion-out", kspace]
    _fails(args, "also an input", tmp_path)
    args = ["recon", kspace, "-o", tmp_path / "x.nii.gz", "--estimate-motion", "--motion-out", tmp_path / "m.txt"]
    _fails(args, ".csv", tmp_path)
