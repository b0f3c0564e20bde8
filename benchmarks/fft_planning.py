"""FFTW planning of the NUFFTs: ``"estimate"`` everywhere vs the rule ``nufft.fft_planning`` (``"measure"`` on large
grids with many NUFFT calls), on the jobs of ``benchmarks/simulate_vs_torchio.py``.

1-mm MNI152, 8 loop coils fixed in the scanner (exact model): simulation at 8 and 32 motion states and one state per
phase-encode line, and the 3-D reconstruction of the 8-state k-space (10 CG iterations of the moving-coil model, 1 of
the exact one, as ``mrmotion recon``). Every run is a fresh process, so each pays FFTW's planning as a command-line
run does (FFTW keeps measured plans for the rest of a process); the two settings alternate, ``--repeats`` times.

``--compare chunk``: instead, the simulations with ``simulate.SIMULATION_CHUNK`` 4 and 8 coil weighting components
per NUFFT call (planning by the rule in both).

Run: ``python benchmarks/fft_planning.py [--repeats 2] [--no-recon] [--compare planning|chunk]`` (planning: about 15
minutes on 2 cores; chunk: about 5). Results: ``benchmarks/results/fft_planning.txt``
(``simulation_chunk.txt`` for ``--compare chunk``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results"
#: The settings compared, the first as the reference, for each ``--compare``.
SETTINGS = {"planning": ("estimate", "rule"), "chunk": ("4", "8")}


def worker(spec: dict, tmp: Path) -> None:
    """One job in this process with ``spec["planning"]`` (estimate / rule) or ``spec["chunk"]``; prints its result as
    JSON."""
    import simulate_vs_torchio as bench
    from mrmotion.physics import nufft, simulate

    if spec.pop("planning", "rule") == "estimate":
        nufft.MEASURE_IMAGES = sys.maxsize  # never measure
    if "chunk" in spec:
        simulate.SIMULATION_CHUNK = int(spec.pop("chunk"))
    job = spec.pop("job")
    print(json.dumps(bench.JOBS[job](spec, tmp)), flush=True)


def run(spec: dict, tmp: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec), "--tmp", str(tmp)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{spec} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting per case (alternating)")
    parser.add_argument("--no-recon", action="store_true", help="simulations only")
    parser.add_argument("--compare", choices=tuple(SETTINGS), default="planning", help="what to compare")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker), Path(args.tmp))
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    started = datetime.datetime.now()
    tmp = Path(tempfile.mkdtemp(prefix="mrmotion_fft_planning_"))
    cases = [
        (f"simulate, {states} states", {"job": "ours", "resolution": 1, "states": states, "coils": 8})
        for states in (8, 32, "line")
    ]
    settings = SETTINGS[args.compare]
    if not args.no_recon and args.compare == "planning":
        cases.append(("reconstruct, 8 states", {"job": "recon3d", "resolution": 1, "states": 8, "iterations": 10}))
    lines = []
    try:
        for name, spec in cases:
            if spec["job"] == "recon3d":  # its input: the 8-state k-space, simulated once
                source = {"job": "ours", "resolution": 1, "states": 8, "coils": 8, "save_kspace": 1}
                run({**source, "planning": "rule"}, tmp)
            seconds: dict[str, list[float]] = {setting: [] for setting in settings}
            detail = ""
            for _ in range(args.repeats):
                for setting in settings:
                    result = run({**spec, args.compare: setting}, tmp)
                    seconds[setting].append(result["seconds"])
                    if spec["job"] == "ours":  # (a reconstruction runs two operators: no one rank to show)
                        detail = f"clusters {result['clusters']}, rank {result['rank']}"
                    now = f"{datetime.datetime.now():%H:%M:%S}"
                    print(f"[{now}] {name}, {setting}: {result['seconds']:.1f} s", flush=True)
            reference, other = (float(np.median(seconds[s])) for s in settings)
            runs = [" / ".join(f"{v:.1f}" for v in seconds[s]) for s in settings]
            lines.append(f"{name:24s} {runs[0]:>18s} {runs[1]:>18s} {reference / other:8.2f}×   {detail}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    legend = {
        "planning": "estimate: FFTW_ESTIMATE everywhere; rule: nufft.fft_planning (FFTW_MEASURE on grids > "
        "MEASURE_VOXELS with ≥ MEASURE_IMAGES images through the NUFFT per application)",
        "chunk": "4 / 8: simulate.SIMULATION_CHUNK, coil weighting components per NUFFT call (planning by the rule)",
    }[args.compare]
    options = f"{' --no-recon' if args.no_recon else ''}{' --compare chunk' if args.compare == 'chunk' else ''}"
    header = (
        f"# {started:%Y-%m-%d %H:%M}–{datetime.datetime.now():%H:%M} · command: python benchmarks/fft_planning.py"
        f" --repeats {args.repeats}{options}\n"
        "1-mm MNI152, 8 coils fixed in the scanner (exact model); wall time (s) of each run, each a fresh process\n"
        f"{legend}\n\n"
        f"{'case':24s} {settings[0] + ' (s)':>18s} {settings[1] + ' (s)':>18s} {'speed-up':>9s}"
    )
    text = "\n".join([header, *lines])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = "simulation_chunk" if args.compare == "chunk" else "fft_planning" + ("_no_recon" if args.no_recon else "")
    (RESULTS / f"{stem}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
