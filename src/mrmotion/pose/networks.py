"""The pose networks: an O(3)-equivariant axis predictor (e3nn), its plain-CNN twin, and a brain localiser.

The axis networks follow E(3)-Pose (DESIGN.md §4) in what they output — one pseudovector along the left–right axis
and two vectors, anterior and superior, orthonormalised into a proper rotation with det = +1 fixing the left–right
sign — but reach it through a dense task that trains quickly on two CPU cores:

1. :class:`EquivariantAxesNet`: e3nn voxel convolutions with gated non-linearities over irreps
   ``4n×0e + 4n×0o + 2n×1e + 2n×1o + n×2e + n×2o`` (a low-pass filter with stride 2 between levels, one skip
   level) give, at every output voxel, a brain weight and the voxel's coordinates in the head frame. These are
   scalars (``0e``, and ``0o`` for left–right), so they are invariant to rotations of the input.
2. :class:`CoordinateAxes` turns them into vectors by least squares: with voxel positions r (``1o``) relative to
   the brain's centroid, ``Σ w·z·r`` for each head coordinate z. The left–right coordinate is a pseudoscalar
   (``0o``), so its axis is a pseudovector (``1e``: a mirror through the mid-sagittal plane leaves it unchanged),
   known up to sign; posterior and superior are vectors (``1o``). Vectors made from invariant maps and voxel
   positions rotate with the head, so the whole network is O(3)-equivariant: exactly for the 48 symmetries of the
   voxel grid, up to discretisation for other rotations.

Training (:mod:`mrmotion.pose.train`) uses the dense coordinate loss plus the E(3)-Pose loss on the axes
(|ê × e| for the sign-free pseudovector, L1 for the vectors).

:class:`CnnAxesNet` is the non-equivariant comparison: a plain 3-D CNN of similar size with the same head, outputs
and training. :class:`Localiser` is a small 3-D U-Net giving brain logits on a whole field of view.
"""

from __future__ import annotations

import torch
from torch import nn

#: e3nn levels: (n, convolutions, kernel diameter in voxels). Level i works at (size - 1) / 2**i + 1 voxels.
EQUIVARIANT_LEVELS = ((1, 1, 5), (2, 1, 5), (4, 2, 3))
#: kernel diameter (voxels) of the convolution that joins level 3 (upsampled) with level 2
JOIN_DIAMETER = 3
#: channels of the plain CNN's levels, chosen so that it has about as many weights as the e3nn network.
CNN_CHANNELS = (4, 8, 16)
#: per output voxel: brain weight logit, then the voxel's head coordinates (left–right is a pseudoscalar)
OUTPUT_IRREPS = "1x0e + 1x0o + 2x0e"


class _ChannelsLast(nn.Module):
    """Applies an e3nn module that wants features last to a ``(batch, features, x, y, z)`` tensor."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.movedim(1, -1)).movedim(-1, 1)


def _gated_convolution(irreps_in, n: int, diameter: int):
    from e3nn import o3
    from e3nn.nn import Gate
    from e3nn.nn.models.v2104.voxel_convolution import Convolution

    scalars = o3.Irreps(f"{4 * n}x0e + {4 * n}x0o")
    gated = o3.Irreps(f"{2 * n}x1e + {2 * n}x1o + {n}x2e + {n}x2o")
    gates = o3.Irreps(f"{gated.num_irreps}x0e")
    gate = Gate(scalars, [torch.relu, torch.tanh], gates, [torch.sigmoid], gated)
    convolution = Convolution(
        irreps_in, gate.irreps_in, o3.Irreps.spherical_harmonics(2), diameter=diameter, num_radial_basis=3
    )
    return nn.Sequential(convolution, _ChannelsLast(gate)), gate.irreps_out


def _upsample(features: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # corners aligned: with odd sizes (m - 1) = 2 (k - 1) every coarse voxel lands on a fine one, symmetrically
    return nn.functional.interpolate(features, size=like.shape[-3:], mode="trilinear", align_corners=True)


class EquivariantAxesNet(nn.Module):
    """O(3)-equivariant axes from a cube ``(B, 1, n, n, n)`` (n odd, e.g. 33; brain ≈ 60% of the side).

    Returns a dict: ``output`` ``(B, 4, m, m, m)`` (:data:`OUTPUT_IRREPS`) with m = (n - 1) / 2 + 1, and what
    :class:`CoordinateAxes` gives (unit ``left``, ``anterior``, ``superior`` in the cube's axes, ``confidence``...).
    """

    def __init__(self, levels: tuple[tuple[int, int, int], ...] = EQUIVARIANT_LEVELS) -> None:
        super().__init__()
        from e3nn import o3
        from e3nn.nn.models.v2104.voxel_convolution import Convolution, LowPassFilter

        stages, widths = [], []
        irreps = o3.Irreps("0e")
        for n, count, diameter in levels:
            blocks = []
            for _ in range(count):
                block, irreps = _gated_convolution(irreps, n, diameter)
                blocks.append(block)
            stages.append(nn.Sequential(*blocks))
            widths.append(irreps)
        self.stages = nn.ModuleList(stages)
        self.down = LowPassFilter(2.0, stride=2)
        self.join, joined = _gated_convolution(widths[1] + widths[2], levels[1][0], JOIN_DIAMETER)
        self.out = Convolution(joined, OUTPUT_IRREPS, o3.Irreps.spherical_harmonics(2), diameter=3, num_radial_basis=3)
        with torch.no_grad():  # e3nn initialises at unit scale; start the outputs near zero (small last-layer init)
            for parameter in self.out.parameters():
                parameter.mul_(0.1)
        self.axes = CoordinateAxes()

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        first = self.stages[0](x)
        second = self.stages[1](self.down(first))
        third = self.stages[2](self.down(second))
        return self.out(self.join(torch.cat([second, _upsample(third, second)], dim=1)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        output = self.segment(x)
        return {"output": output, **self.axes(output)}


class CnnAxesNet(nn.Module):
    """A plain 3-D CNN with the same input, outputs, resolution, skip level and head as :class:`EquivariantAxesNet`."""

    def __init__(self, channels: tuple[int, ...] = CNN_CHANNELS) -> None:
        super().__init__()

        def block(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv3d(a, b, 3, padding=1), nn.LeakyReLU(0.1), nn.Conv3d(b, b, 3, padding=1), nn.LeakyReLU(0.1)
            )

        self.first = block(1, channels[0])
        self.second = block(channels[0], channels[1])
        self.third = block(channels[1], channels[2])
        self.join = block(channels[1] + channels[2], channels[1])
        self.out = nn.Conv3d(channels[1], 4, 3, padding=1)
        self.axes = CoordinateAxes()

    @staticmethod
    def _down(t: torch.Tensor) -> torch.Tensor:  # n → (n - 1) / 2 + 1 with the corners kept, like the e3nn levels
        return nn.functional.avg_pool3d(nn.functional.pad(t, (1, 1) * 3, mode="replicate"), 3, stride=2)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        second = self.second(self._down(self.first(x)))
        third = self.third(self._down(second))
        return self.out(self.join(torch.cat([second, _upsample(third, second)], dim=1)))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        output = self.segment(x)
        return {"output": output, **self.axes(output)}


def cube_positions(size: int) -> torch.Tensor:
    """(3, size³) voxel centres of a cube in units of its side, centred on the cube's centre (scanner axes)."""
    index = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) / (size - 1)
    return torch.stack(torch.meshgrid(index, index, index, indexing="ij")).reshape(3, -1)


class CoordinateAxes(nn.Module):
    """Head axes from dense head-frame coordinates, by least squares (the rows of Kabsch's cross-covariance).

    Input ``(B, 4, m, m, m)``: a weight logit (``0e``: is this voxel brain?), the voxel's coordinate along the head's
    left–right axis (``0o``, a pseudoscalar: its sign flips under a mirror, so it is known up to a global sign), and
    along its posterior and superior axes (``0e``), in units of :func:`cube_positions`. With weights w (sigmoid),
    positions r relative to their weighted centroid and coordinates z, the axes are ``Σ w z_j r``: left–right a
    pseudovector (``0o × 1o = 1e``), posterior and superior vectors (``1o``). ``confidence`` is the weighted share of
    the positions' spread that the predicted coordinates, turned by the estimated axes, explain.

    Two readings of the same sums: ``left``/``anterior``/``superior`` normalise each column (smooth, used by the
    training loss), and ``rotation`` (B, 3, 3) is the Kabsch solution, the proper rotation nearest the matrix whose
    columns are the three sums (its polar factor; the left–right column's sign chosen for det = +1). With exact
    coordinates the columns are ``C·e_j`` (C the brain's second-moment matrix), which per-column normalisation
    leaves tilted toward C's main axis; the polar factor of ``C·E`` is exactly ``E``. It is computed without
    gradient (an SVD's gradient is unstable when singular values meet) and is what inference uses.
    """

    def forward(self, output: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = cube_positions(output.shape[-1]).to(output)
        flat = output.flatten(2)
        weights = torch.sigmoid(flat[:, 0])
        total = weights.sum(-1, keepdim=True).clamp_min(1e-6)
        centre = (weights[:, None] * positions).sum(-1) / total  # (B, 3)
        relative = positions[None] - centre[:, :, None]  # (B, 3, V)
        coordinates = flat[:, 1:4]  # (B, 3 head axes, V)
        # only coordinates relative to their weighted mean matter (the sums below are blind to an offset)
        coordinates = coordinates - (weights[:, None] * coordinates).sum(-1, keepdim=True) / total[:, None]
        axes = torch.einsum("bjv,biv->bji", coordinates * weights[:, None], relative)  # row j: head axis j in scanner
        unit = {
            "left": nn.functional.normalize(axes[:, 0], dim=1, eps=1e-8),
            "anterior": nn.functional.normalize(-axes[:, 1], dim=1, eps=1e-8),
            "superior": nn.functional.normalize(axes[:, 2], dim=1, eps=1e-8),
        }
        frame = torch.stack([unit["left"], -unit["anterior"], unit["superior"]], dim=-1)  # (B, 3, 3), near-orthonormal
        # the left–right coordinate has no sign of its own: take the one that fits
        fitted = torch.einsum("bij,bjv->biv", frame, coordinates)
        flipped = fitted - 2 * frame[:, :, :1] * coordinates[:, None, 0]
        misfit = torch.minimum(((fitted - relative) ** 2).sum(1), ((flipped - relative) ** 2).sum(1))
        spread = ((relative**2).sum(1) * weights).sum(-1).clamp_min(1e-9)
        confidence = (1 - (misfit * weights).sum(-1) / spread).clamp(0, 1) * (weights.mean(-1) > 1e-3)
        return {**unit, "centre": centre, "weights": weights, "confidence": confidence, "rotation": kabsch(axes)}


@torch.no_grad()
def kabsch(axes: torch.Tensor) -> torch.Tensor:
    """Proper rotation (B, 3, 3, float64) nearest the matrix whose columns are ``axes[:, j]`` (the left, posterior
    and superior sums), flipping the left–right column when needed for det = +1 (that axis is known up to sign)."""
    matrix = axes.transpose(1, 2).double()
    u, _, vt = torch.linalg.svd(matrix)
    rotation = u @ vt
    flip = torch.ones(len(axes), 3, dtype=rotation.dtype)
    flip[:, 0] = torch.linalg.det(rotation).sign().where(torch.linalg.det(rotation) != 0, torch.ones(()))
    return rotation * flip[:, None, :]  # float64: orthonormal to 1e-15


def axes_loss(pooled: dict[str, torch.Tensor], left: torch.Tensor, anterior: torch.Tensor, superior: torch.Tensor):
    """E(3)-Pose loss on the axes: |ê × e| for the left–right pseudovector (sign-free), L1 for anterior and superior.
    Targets are ``(batch, 3)`` unit vectors."""
    cross = torch.linalg.cross(pooled["left"], left, dim=1).norm(dim=1)
    l1 = (pooled["anterior"] - anterior).abs().sum(1) + (pooled["superior"] - superior).abs().sum(1)
    return (cross + l1).mean()


def coordinate_loss(output: torch.Tensor, brain: torch.Tensor, coordinates: torch.Tensor) -> torch.Tensor:
    """Dense part of the training loss: binary cross-entropy of the weight logit against the brain fraction, and
    L1 of the head coordinates inside the brain (left–right compared up to one sign per volume).

    Coordinates are compared after removing each one's brain-weighted mean, predicted and true alike: the axes
    (:class:`CoordinateAxes`) do not depend on a constant offset, and the offset — where the brain's centre lies in
    the cube — is a global quantity a local network cannot see; asking for it only adds noise to the gradients.

    ``output`` ``(B, 4, m, m, m)``; ``brain`` ``(B, m, m, m)`` in [0, 1]; ``coordinates`` ``(B, 3, m, m, m)``.
    """
    weight = nn.functional.binary_cross_entropy_with_logits(output[:, 0], brain)
    mass = brain.sum((1, 2, 3)).clamp_min(1e-6)

    def centred(a: torch.Tensor) -> torch.Tensor:
        return a - ((a * brain).sum((1, 2, 3)) / mass)[:, None, None, None]

    def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((centred(a) - centred(b)).abs() * brain).sum((1, 2, 3)) / mass

    left = torch.minimum(l1(output[:, 1], coordinates[:, 0]), l1(output[:, 1], -coordinates[:, 0]))
    rest = l1(output[:, 2], coordinates[:, 1]) + l1(output[:, 3], coordinates[:, 2])
    return weight + 4 * (left + rest).mean()


def _double_conv(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(channels_in, channels_out, 3, padding=1),
        nn.InstanceNorm3d(channels_out, affine=True),
        nn.LeakyReLU(0.1),
        nn.Conv3d(channels_out, channels_out, 3, padding=1),
        nn.InstanceNorm3d(channels_out, affine=True),
        nn.LeakyReLU(0.1),
    )


class Localiser(nn.Module):
    """3-D U-Net (three levels) from a normalised volume to brain logits on the same grid (size divisible by 4)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.down1 = _double_conv(1, width)
        self.down2 = _double_conv(width, 2 * width)
        self.bottom = _double_conv(2 * width, 4 * width)
        self.up2 = _double_conv(6 * width, 2 * width)
        self.up1 = _double_conv(3 * width, width)
        self.out = nn.Conv3d(width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = nn.functional.avg_pool3d
        up = nn.functional.interpolate
        a = self.down1(x)
        b = self.down2(pool(a, 2))
        c = self.bottom(pool(b, 2))
        b = self.up2(torch.cat([b, up(c, scale_factor=2, mode="trilinear", align_corners=False)], dim=1))
        a = self.up1(torch.cat([a, up(b, scale_factor=2, mode="trilinear", align_corners=False)], dim=1))
        return self.out(a)
