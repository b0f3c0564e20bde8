"""Inference settings of the pose estimator that trade time for accuracy, chosen on scouts of the TRAINING atlases
(never the held-out ones) with the shipped weights, the same scouts for every setting:

* the networks' arithmetic (``PoseModel.precision``: float32 as trained, or bfloat16 convolutions);
* the template refinement: gradient steps (``template.STEPS``), candidates refined (``template.REFINED``) and the
  screen margin above which only the best is (``template.CLEAR_MARGIN``);
* the localiser's average with the mirrored volume (``estimate.LOCALISER_MIRROR``);
* the symmetry group the region network is averaged over (``estimate.GROUPS``).

Per setting: median and 95th-percentile rotation error, failures (> 30°), median translation error, seconds per
volume, and how far its poses are from the first setting's. Also the parts, timed alone: each network's forward
pass in float32 and in bfloat16, and PyTorch's trilinear upsampling in the layouts and dtypes the networks could use
(why ``networks.upsample2`` works in channels-last float32).

Writes ``benchmarks/results/pose_speed_settings.txt``.

    python benchmarks/pose_speed_settings.py [--per-atlas 8] [--only LABEL ...]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pose as pose_benchmark  # noqa: E402  (test volumes and the geodesic, as benchmarks/pose.py makes them)

#: label → (precision, overrides of module constants as "module.NAME": value; "group": the region network's group)
SETTINGS = {
    "float32": ("float32", {}),
    "bfloat16": ("bfloat16", {}),
    "bfloat16, 10 steps": ("bfloat16", {"template.STEPS": 10}),
    "bfloat16, 2 refined": ("bfloat16", {"template.REFINED": 2}),
    "bfloat16, no mirror": ("bfloat16", {"estimate.LOCALISER_MIRROR": False}),
    "bfloat16, half-turn": ("bfloat16", {"group": "half-turn"}),
    "bfloat16, always 3 refined": ("bfloat16", {"template.CLEAR_MARGIN": float("inf")}),
}


def seconds_per_call(function, repeats: int = 10) -> float:
    function()
    function()
    began = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - began) / repeats


def part_timings(model) -> list[str]:
    """Forward passes of the two networks at both precisions, and trilinear upsampling in four layouts/dtypes."""
    import torch

    from mrmotion.pose.estimate import GROUPS, LOCALISER_SIZE
    from mrmotion.pose.networks import inference_precision
    from mrmotion.pose.regions import GROUP_SIZES

    lines = ["parts (ms per call):"]
    channels_last = torch.channels_last_3d
    cases = [
        ("localiser, volume + mirror", model.localiser, (2, 1, *(LOCALISER_SIZE,) * 3)),
        (
            f"region network, {GROUP_SIZES[GROUPS['equivariant']]} rotations",
            model.regions,
            (GROUP_SIZES[GROUPS["equivariant"]], 1, *(model.size,) * 3),
        ),
    ]
    with torch.no_grad():
        for name, network, shape in cases:
            volume = torch.randn(shape).contiguous(memory_format=channels_last)
            times, outputs = {}, {}
            for precision in ("float32", "bfloat16"):

                def run(precision=precision, network=network, volume=volume, outputs=outputs):
                    with inference_precision(precision):
                        outputs[precision] = network(volume).float()

                times[precision] = seconds_per_call(run)
            difference = float((outputs["bfloat16"] - outputs["float32"]).abs().max())
            scale = float(outputs["float32"].abs().max())
            lines.append(
                f"  {name:38} float32 {1000 * times['float32']:6.1f}  bfloat16 {1000 * times['bfloat16']:6.1f}  "
                f"({times['float32'] / times['bfloat16']:.1f}x; logits differ by ≤ {difference:.2f} of ≤ {scale:.1f})"
            )
        features = torch.randn(4, 24, 16, 16, 16)
        layouts = {
            "contiguous float32": features,
            "contiguous bfloat16": features.bfloat16(),
            "channels-last float32": features.contiguous(memory_format=channels_last),
            "channels-last bfloat16": features.bfloat16().contiguous(memory_format=channels_last),
        }
        upsampling = {
            name: seconds_per_call(
                lambda x=x: torch.nn.functional.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
            )
            for name, x in layouts.items()
        }
        lines.append(
            "  trilinear upsampling ×2 of (4, 24, 16³): "
            + ", ".join(f"{name} {1000 * value:.1f}" for name, value in upsampling.items())
        )
    return lines


def screen_margins(scouts: list, model) -> list[str]:
    """How clearly the template search's screen picks the candidate that wins after refinement, with every search
    refining ``template.REFINED`` candidates: per search, the margin of the best screened score over the second,
    and whether the winner was the best screened (the refined rotation nearest it). Chooses
    ``template.CLEAR_MARGIN``."""
    from mrmotion.pose import estimate, template

    searches: list[tuple[float, bool]] = []
    refine = template.refine_rotation

    def recorded(score, rotation):
        ranked, scores = template.screen(score, rotation)
        result = refine(score, rotation)
        starts = ranked[: template.REFINED].double().numpy()
        nearest = int(np.argmax([np.trace(start.T @ result[0]) for start in starts]))
        searches.append((float(scores[0] - scores[1]), nearest == 0))
        return result

    saved = template.CLEAR_MARGIN, estimate.refine_rotation
    template.CLEAR_MARGIN, estimate.refine_rotation = float("inf"), recorded
    try:
        pose_benchmark.run_scouts(scouts, model)
    finally:
        template.CLEAR_MARGIN, estimate.refine_rotation = saved
    margins = np.array([margin for margin, _ in searches])
    others = margins[[not best for _, best in searches]]
    return [
        f"screen margins ({len(searches)} template searches, retries included, every search refining "
        f"{template.REFINED}): median {np.median(margins):.3f}; won by a candidate other than the best screened: "
        f"{len(others)}, at margins up to {others.max() if len(others) else 0:.4f}; margins ≥ CLEAR_MARGIN "
        f"({template.CLEAR_MARGIN:g}, only the best refined): {np.mean(margins >= template.CLEAR_MARGIN):.0%}",
    ]


def defaults_of(estimate, template) -> list[tuple[object, str]]:
    """The module constants the settings override, to print their defaults."""
    return [(template, "STEPS"), (template, "REFINED"), (template, "CLEAR_MARGIN"), (estimate, "LOCALISER_MIRROR")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-atlas", type=int, default=8, help="scouts per training atlas")
    parser.add_argument("--seed", type=int, default=78)
    parser.add_argument("--only", nargs="+", help="labels of the settings to run (default: all)")
    args = parser.parse_args()

    import torch

    from mrmotion.pose import estimate, template
    from mrmotion.pose.networks import native_bfloat16

    torch.set_num_threads(2)
    shipped = estimate.PoseModel.load()
    folders = pose_benchmark.atlas_folders(held_out=False)
    scouts = pose_benchmark.scouts_of(folders, args.per_atlas, np.random.default_rng(args.seed))
    chosen = args.only or list(SETTINGS)
    unknown = [label for label in chosen if label not in SETTINGS]
    if unknown:
        sys.exit(f"unknown settings {unknown}: expected some of {list(SETTINGS)}")
    lines = [
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.node()} · torch {torch.__version__} · native bfloat16: "
        f"{native_bfloat16()} · command: python benchmarks/pose_speed_settings.py --per-atlas {args.per_atlas}"
        + (f" --only {' '.join(repr(c) for c in args.only)}" if args.only else ""),
        f"{args.per_atlas} scouts of each of {len(folders)} training atlases (3 mm, as benchmarks/pose.py makes them), "
        "shipped weights; the same scouts for every setting; defaults: "
        + ", ".join(f"{name} {getattr(module, name)}" for module, name in defaults_of(estimate, template)),
        "",
        f"{'setting':24} {pose_benchmark.SCOUT_COLUMNS} {'vs first: median °':>19} {'max °':>6}",
    ]
    print("\n".join(lines), flush=True)
    reference = None
    modules = {"estimate": estimate, "template": template}
    for label in chosen:
        precision, overrides = SETTINGS[label]
        saved = {key: getattr(modules[key.split(".")[0]], key.split(".")[1]) for key in overrides if key != "group"}
        saved_group = estimate.GROUPS["equivariant"]
        try:
            for key, value in overrides.items():
                if key == "group":
                    estimate.GROUPS["equivariant"] = value
                else:
                    setattr(modules[key.split(".")[0]], key.split(".")[1], value)
            model = replace(shipped, precision=precision)
            estimate.estimate_pose(*scouts[0][:2], model)  # warm-up
            run = pose_benchmark.run_scouts(scouts, model)
        finally:
            for key, value in saved.items():
                setattr(modules[key.split(".")[0]], key.split(".")[1], value)
            estimate.GROUPS["equivariant"] = saved_group
        reference = reference or run["poses"]
        apart = [
            pose_benchmark.geodesic_deg(a, b) if np.all(np.isfinite(a) & np.isfinite(b)) else 180.0
            for a, b in zip(run["poses"], reference, strict=True)
        ]
        lines.append(f"{label:24} {pose_benchmark.scout_summary(run)} {np.median(apart):19.2f} {np.max(apart):6.1f}")
        print(lines[-1], flush=True)
    lines += ["", *screen_margins(scouts, replace(shipped, precision="bfloat16")), "", *part_timings(shipped)]
    text = "\n".join(lines)
    out = pose_benchmark.RESULTS / "pose_speed_settings.txt"
    out.write_text(text + "\n")
    print("\n".join(lines[-3:]))


if __name__ == "__main__":
    main()
