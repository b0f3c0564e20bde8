"""The card of the shipped pose weights (``weights/pose_card.md``): data, configuration, steps, time, metrics.

Written from what the files themselves hold — each safetensors file's configuration and summary, its training log,
and the last pose benchmark's results if there are some — so the card cannot drift from the weights.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np

from mrmotion.io.files import write_text_atomic
from mrmotion.io.weights import weights_metadata
from mrmotion.pose.train import HELD_OUT, SHIPPED

ROLES = {
    "localiser": "brain localiser (3-D U-Net, brain probability on a 48³ cube over the whole field of view)",
    "regions": "brain regions (3-D U-Net, nine left–right-symmetric regions on a 32³ cube around the brain; the "
    "head's rotation is fitted to the brain's principal axes and the regions' centroids)",
}


def _validation(log: Path) -> list[tuple[int, float]]:
    if not log.is_file():
        return []
    with log.open() as handle:
        return [(int(row["step"]), float(row["validation"])) for row in csv.DictReader(handle) if row["validation"]]


def card_text(folder: Path, benchmark: Path | None = None) -> str:
    """The card as Markdown, from the weights in ``folder`` and an optional ``benchmarks/results/pose.json`` (with
    the ``pose_passes<N>.json`` runs beside it, if any)."""
    lines = [
        "# Pose weights",
        "",
        "Trained on synthetic volumes made on the fly (`mrmotion.pose.synth`) from the fetal spina bifida atlases",
        "(Fidon et al. 2021, CC0; parcellation labels, brain mask) and, for a share of the samples, the adult MNI152",
        "template's tissue maps (nilearn; for the region network labelled like the fetal atlases by coordinate rules,",
        "`mrmotion.pose.synth.adult_region_subject`, as no freely licensed atlas of its structures is embedded in a",
        "package; the template's own T1 image is never used in training). Random rotation",
        "over SO(3), translation, tissue contrast (random, or T2-like with jitter), bias field, gamma, Rician noise,",
        "thick slices (2–8 mm, staircase), spin-history bands, partial fields of view, and clutter around the head",
        "(uterus, amniotic fluid, fetal body, maternal tissue). The region network's metadata also holds the training",
        "atlases' mean layout (region centroids and brain second moments, head frame, in brain sizes) that poses are",
        "fitted to.",
        f"Held out of training for the evaluation: {', '.join(HELD_OUT)}.",
        "",
        "Reproduce: `mrmotion train-pose --atlases ../shared/data/fetal_atlas_spina_bifida -o src/mrmotion/weights`",
        "(stages in this order; a stage stopped part-way continues with `--resume`; one trained in two goes, e.g.",
        "400 steps then extended, is reproduced by `--steps 400` then `--resume` with the longer default).",
        "The shipped pose_localiser was trained in three goes: `--stage localiser --steps 1200 --t2-share 0",
        "--zero-fill-share 0` (label contrasts only); `--stage localiser --resume --steps 2400 --zero-fill-share 0`,",
        "with 40% of the fetal samples rendered from the training atlases' own T2 images (the validation set changes",
        "with it at 1200: from then on it holds T2 samples too); and `--stage localiser --resume` to 3000 steps, with",
        "a quarter of the samples' fields of view turned against the grid and zero outside it, as in resampled",
        "volumes (`synth.with_turned_field`; on 60 held-out scouts whose voxels were turned, `benchmarks/pose.py`,",
        "pose(R·x) was more than 30° from R·pose(x) for 15% after it, and for 42% with the weights of commit 0e3f74f",
        "(a scratch run of the same check); 8% (5 of 60, `pose.json` `equivariance_deg.resampled`) since the zeros",
        "outside a field of view are filled before the search,",
        "`mrmotion.pose.field_of_view`); the",
        "validation set holds such samples from 2400 on). The shipped pose_regions: `--stage regions --steps 2400`",
        "(its cosine schedule ending at 2400), then `--stage regions --resume --steps 3600 --adult-share 0` (both",
        "without adult samples), then `--stage regions --resume` to 4800 steps with 15% adult samples. Its",
        "validation column changes meaning at 2400: up to there poses were fitted to the region centroids alone (17°",
        "at 2400), after it to centroids and principal axes with axes weight 1 (6.4° at 3600; the shipped fit uses",
        "weight 10); and at 3600, from where",
        "the validation set holds adult samples too.",
        "",
        "Files of each network here: `<name>.safetensors` (the weights, configuration in its metadata),",
        "`<name>.ckpt` (checkpoint with optimiser state, for `train-pose --resume`) and `<name>.log.csv`",
        "(training log: step, seconds, learning rate, loss, validation every 100 steps), for pose_localiser,",
        "pose_regions. `pose_templates.safetensors` (`--stage templates`, seconds): the region fractions of each",
        "training atlas and of the labelled adult template on a 32³ cube in its head frame, which the closed-form",
        "rotation is refined against (`mrmotion.pose.template`: the one of nearest brain size).",
        "",
        "| file | role | parameters | size | cube | steps × batch | learning rate | CPU time | validation |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, (config, filename) in SHIPPED.items():
        path = folder / filename
        if not path.is_file():
            lines.append(
                f"| {filename} | {ROLES[name]} | not trained yet | | | {config.steps} × {config.batch} | | | |"
            )
            continue
        meta = weights_metadata(path)
        summary, used = meta["summary"], meta["config"]
        history = _validation(path.with_suffix(".log.csv"))
        unit = "mean Dice" if used.get("stage") == "localiser" else "median rotation error, degrees"
        last = f"{history[-1][1]:.3g} ({unit}, step {history[-1][0]})" if history else "—"
        lines.append(
            f"| {filename} | {ROLES[name]} | {meta['parameters']:,} | {meta['bytes'] / 1e3:.0f} kB | "
            f"{used.get('size', '?')}³ | {summary.get('steps', '?')} × {used.get('batch', '?')} | "
            f"{used.get('learning_rate', '?')} | "
            f"{summary.get('seconds', 0) / 60:.0f} min | {last} |"
        )
    region_history = _validation((folder / SHIPPED["regions"][1]).with_suffix(".log.csv"))
    if region_history and region_history[-1][1] > 30:
        lines += [
            "",
            f"**Status: the region network is not trained to a usable accuracy** (validation median rotation "
            f"error {region_history[-1][1]:.0f}°, chance is about 126°): its orientations must not be used yet.",
        ]
    lines += ["", "Validation history (24 synthetic volumes of the training atlases, fixed seed):", ""]
    for name, (_, filename) in SHIPPED.items():
        history = _validation((folder / filename).with_suffix(".log.csv"))
        if history:
            lines.append(f"- {name}: " + ", ".join(f"{step}: {value:.3g}" for step, value in history))
    if benchmark is not None and benchmark.is_file():
        results = json.loads(benchmark.read_text())
        lines += [
            "",
            f"Held-out evaluation (`{benchmark.name}`, from `python benchmarks/pose.py`):",
            "",
            "| method | volumes | rotation median (°) | p95 (°) | failures > 30° | translation med. (mm) | s/vol |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for method, s in results["summary"].items():
            lines.append(
                f"| {method} | {s['count']} | {s['rotation_median_deg']:.1f} | {s['rotation_p95_deg']:.1f} | "
                f"{100 * s['failures']:.1f}% | {s['translation_median_mm']:.1f} | {s['seconds_per_volume']:.2f} |"
            )
        lines += _passes_table(benchmark, results)
    return "\n".join(lines) + "\n"


#: the results of ``benchmarks/pose.py --passes N --tag passesN`` (not its ``--quick`` runs)
PASSES_FILE = r"pose_passes(\d+)\.json"


def _run_date(results: Path) -> str:
    """The date of a benchmark run, from the first line of its ``.txt`` (``# YYYY-MM-DD HH:MM · …``), or "?"."""
    text = results.with_suffix(".txt")
    found = re.match(r"# (\d{4}-\d\d-\d\d \d\d:\d\d)", text.read_text()) if text.is_file() else None
    return found.group(1) if found else "?"


def _passes_table(benchmark: Path, results: dict) -> list[str]:
    """Lines comparing ``mrmotion pose --passes N``: the runs ``benchmarks/pose.py --passes N --tag passesN`` wrote
    beside ``benchmark`` (``pose_passes<N>.json``) and ``benchmark`` itself (its ``results``, already read), each
    its first method (ours). Empty without such runs."""
    tagged = [path for path in benchmark.parent.glob("pose_passes*.json") if re.fullmatch(PASSES_FILE, path.name)]
    runs = {benchmark: (results.get("run", {}).get("passes") or 1, results)}
    for path in sorted(tagged):
        loaded = json.loads(path.read_text())
        named = re.fullmatch(PASSES_FILE, path.name)  # the number of passes of runs from before "run" was recorded
        runs[path] = loaded.get("run", {}).get("passes") or int(named.group(1)), loaded
    if len(runs) < 2:
        return []
    lines = [
        "",
        "The same weights with `mrmotion pose --passes N` (the rotations of N region cubes, shifted by half a voxel,",
        "averaged; `python benchmarks/pose.py --passes N --tag passesN`; the same volumes and equivariance streams;",
        "the seconds move with the machine's load between runs):",
        "",
        "| passes | file (finished) | rotation median (°) | p95 (°) | failures > 30° | equivariance re-rendered / "
        "clean / voxels turned, median (°) | s/vol |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for path, (passes, results) in sorted(runs.items(), key=lambda item: item[1][0]):
        ours = next(iter(results["summary"].values()))
        checks = results["equivariance_deg"]
        equivariance = " / ".join(
            f"{float(np.median(checks[key])):.2f}" if checks.get(key) else "—"
            for key in ("head", "head, clean", "resampled")
        )
        lines.append(
            f"| {passes} | `{path.name}` ({_run_date(path)}) | {ours['rotation_median_deg']:.1f} | "
            f"{ours['rotation_p95_deg']:.1f} | {100 * ours['failures']:.1f}% | {equivariance} | "
            f"{ours['seconds_per_volume']:.2f} |"
        )
    return lines


def write_card(folder: Path, benchmark: Path | None = None) -> Path:
    """Write ``folder/pose_card.md`` (atomically)."""
    return write_text_atomic(folder / "pose_card.md", card_text(folder, benchmark))
