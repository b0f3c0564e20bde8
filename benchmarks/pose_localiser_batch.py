"""Why the pose localiser runs on the volume and its mirror image together: seconds per call of the shipped
localiser on its 48³ cube for a batch of one volume and a batch of two, side by side, as a ratio. For one volume
PyTorch's CPU convolution picks its native kernels for the layers with few channels; a batch of two takes oneDNN.

Writes ``benchmarks/results/pose_localiser_batch.txt``.

    python benchmarks/pose_localiser_batch.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    import torch

    from mrmotion.pose.estimate import LOCALISER_SIZE, default_model

    torch.set_num_threads(2)
    localiser = default_model().localiser
    seconds = {}
    for batch in (1, 2):
        volume = torch.randn(batch, 1, *(LOCALISER_SIZE,) * 3)
        with torch.inference_mode():
            localiser(volume)  # warm-up
            tick = time.perf_counter()
            for _ in range(args.repeats):
                localiser(volume)
        seconds[batch] = (time.perf_counter() - tick) / args.repeats
    text = "\n".join(
        [
            f"# {time.strftime('%Y-%m-%d %H:%M')} · command: python benchmarks/pose_localiser_batch.py "
            f"--repeats {args.repeats}",
            f"localiser, {LOCALISER_SIZE}³, {torch.get_num_threads()} threads, {args.repeats} calls each",
            f"  one volume:          {seconds[1]:.3f} s per call",
            f"  volume + mirror (2): {seconds[2]:.3f} s per call ({seconds[1] / seconds[2]:.1f}× faster than one)",
        ]
    )
    print(text)
    (Path(__file__).resolve().parent / "results" / "pose_localiser_batch.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
