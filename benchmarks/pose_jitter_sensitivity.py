"""Why the pose axis network does not learn: its sensitivity to where the cube around the brain is.

Trains the equivariant axis network briefly (default 100 steps, lr 1e-2, easy curriculum: T2-like contrast, no
clutter) on cubes *exactly* centred on the brain and exactly scaled, then measures its median rotation error on
validation cubes whose centre is off by a share of the side (s.d. per axis) and whose side is off by a factor
1 ± s. With ``--jittered`` it also trains the same network on jittered cubes (0.05 / 0.15, the localiser's
errors) and prints its validation error. About 5 minutes per training on 2 cores.

    python benchmarks/pose_jitter_sensitivity.py [--steps 100] [--jittered]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ATLASES = ROOT.parent / "shared" / "data" / "fetal_atlas_spina_bifida"
LEVELS = [(0.0, 0.0), (0.01, 0.0), (0.0, 0.05), (0.015, 0.05), (0.05, 0.15)]


def main() -> None:
    from mrmotion.io.weights import read_weights
    from mrmotion.pose import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--jittered", action="store_true", help="also train on jittered cubes")
    args = parser.parse_args()
    base = train.TrainConfig(stage="axes", steps=args.steps, batch=8, learning_rate=1e-2, size=17, curriculum=20.0,
                             adult_share=0.1, threads=2)  # fmt: skip
    fetal = train.load_training_subjects(ATLASES)
    runs = [("exact cubes", replace(base, centre_jitter=0.0, scale_jitter=0.0))]
    if args.jittered:
        runs.append(("jittered cubes (0.05 / 0.15)", base))
    with tempfile.TemporaryDirectory() as folder:
        for name, config in runs:
            path = Path(folder) / "axes.safetensors"
            summary = train.train(config, ATLASES, path)
            print(f"trained on {name}, {config.steps} steps: validation {summary['validation']:.1f}° (same cubes)")
            network, _ = read_weights(path, lambda c: train.make_network("axes"), "pose", "")
            for centre, scale in LEVELS:
                test = replace(config, seed=config.seed + 10_000, centre_jitter=centre, scale_jitter=scale)
                batches = [train._batch(test, fetal, None, i) for i in range(3)]
                with torch.no_grad():
                    error = train.evaluate(network, "axes", batches)
                print(f"  cubes off by centre {centre:.3f} × side, scale 1 ± {scale:.2f}: median error {error:.1f}°")


if __name__ == "__main__":
    main()
