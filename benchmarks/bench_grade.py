"""Benchmark: `hwgen grade` on a synthetic class against a read-and-parse baseline, same run.

    python benchmarks/bench_grade.py                 # N = 20,000, 3 repeats
    python benchmarks/bench_grade.py --n 2000 --repeats 5

It generates a class of N students (their variants and a manifest), writes one submission per
student in a temporary folder (a realistic mix: right to 4 decimals, rounded to 3 significant
figures, a catalogued mistake, an early slip carried forward, blank answers, malformed files,
some with derivations), then times, alternately and in fresh processes:

    baseline  a Python process that finds the same files and reads and JSON-parses each one
    grade     `python -m grader grade DIR --manifest ... --out OUT` into a fresh OUT (cold)
    regrade   the same into the OUT of the previous run (warm: unchanged feedback is not rewritten)

and prints the medians and the ratios grade / baseline. Standard library and hwgen only.
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import grader
from grader import core, derivations, variants
from grader.manifest import Manifest, StudentRecord
from grader.params import stack

BASELINE = r"""
import json, os, sys
count = 0
for root, dirs, files in os.walk(sys.argv[1]):
    dirs.sort()
    for name in sorted(files):
        if name.endswith(".json"):
            with open(os.path.join(root, name), "rb") as handle:
                data = handle.read()
            try:
                json.loads(data)
            except ValueError:
                pass
            count += 1
print(count)
"""

RIGHT_DERIVATIONS = derivations.REFERENCE


def _sig3(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    mag = np.floor(np.log10(np.where(a == 0, 1.0, np.abs(a))))
    scale = 10.0 ** (2 - mag)
    return np.round(a * scale) / scale + 0.0


def _answers(given: dict, activation: str, rounding, mistake: str | None, slip: bool) -> dict:
    """A hand computation for a batch, each step rounded and carried forward, optionally mistaken."""
    act = core.ACTIVATIONS[activation]
    x, v, w, t, lr = (given[k] for k in ("x", "v", "w", "target", "lr"))
    u = rounding(np.einsum("nji,ni->nj", v, x))
    if slip:
        u[:, 0] += 0.5  # an arithmetic slip in u_1, carried forward
    h = rounding(np.maximum(u, 0) if mistake == "relu-for-elu" else act.f(u))
    z = rounding(np.einsum("nkj,nj->nk", w, h))
    o = rounding(core.ACTIVATIONS["sigmoid"].f(z) if mistake == "sigmoid-output" else core.softmax(z))
    o_t = np.maximum((o * t).sum(axis=1), 1e-4)  # a rounded-away probability would make the loss infinite
    loss = rounding(-np.log10(o_t) if mistake == "log10-loss" else -np.log(o_t))
    dz = t - o if mistake == "target-minus-output" else o - t
    grad_w = rounding(dz[:, :, None] * h[:, None, :])
    df = act.df(u)
    if mistake == "elu-derivative-one":
        df = np.ones_like(u)
    grad_v = rounding((np.einsum("nk,nkj->nj", dz, w) * df)[:, :, None] * x[:, None, :])
    sign = 1.0 if mistake == "gradient-ascent" else -1.0
    w_new = rounding(w + sign * lr[:, None, None] * grad_w)
    v_new = rounding(v + sign * lr[:, None, None] * grad_v)
    return {"u": u, "h": h, "z": z, "o": o, "loss": loss, "grad_w": grad_w, "grad_v": grad_v, "w_new": w_new, "v_new": v_new}


def make_class(folder: Path, n: int, seed: str) -> tuple[Path, Path]:
    """A manifest and N submissions under folder/submissions/<section>/; returns their paths."""
    ids = [f"2024{k:06d}" for k in range(n)]
    t0 = time.perf_counter()
    params = variants.variants(seed, ids)
    records = [
        StudentRecord(sid, sid, p, {"Student": f"Student {sid}", "SIS User ID": sid, "Section": f"S{k % 4 + 1}"})
        for k, (sid, p) in enumerate(zip(ids, params))
    ]
    manifest_path = folder / "manifest.json"
    Manifest(variants.seed_fingerprint(seed), tuple(records)).write(manifest_path)
    given = stack(params)
    rng = np.random.default_rng(0)
    kind = rng.choice(["right", "rounded", "mistake", "slip", "blank", "malformed"], size=n, p=[0.55, 0.2, 0.15, 0.05, 0.03, 0.02])
    mistake_ids = ["log10-loss", "relu-for-elu", "sigmoid-output", "target-minus-output", "elu-derivative-one", "gradient-ascent"]
    batches = {
        "right": _answers(given, "elu", lambda a: np.round(a, 4) + 0.0, None, False),
        "rounded": _answers(given, "elu", _sig3, None, False),
        "slip": _answers(given, "elu", lambda a: np.round(a, 4) + 0.0, None, True),
        **{m: _answers(given, "elu", lambda a: np.round(a, 4) + 0.0, m, False) for m in mistake_ids},
    }
    root = folder / "submissions"
    for s in range(1, 5):
        (root / f"S{s}").mkdir(parents=True)
    for k, sid in enumerate(ids):
        which = kind[k]
        source = batches[mistake_ids[k % len(mistake_ids)]] if which == "mistake" else batches["right" if which in ("blank", "malformed") else which]
        answers = {key: source[key][k].tolist() for key in core.ANSWER_KEYS}
        if which == "blank":
            answers["w_new"] = None
            answers["v_new"] = [[None] * 3] * 4
        obj = {"student_id": sid, "answers": answers}
        if k % 3 == 0:  # a third write derivations, spaced in one of a few ways
            obj["derivations"] = {key: text.replace(" * ", "*" if k % 2 else " * ") for key, text in RIGHT_DERIVATIONS.items()}
        text = json.dumps(obj, indent=1)
        if which == "malformed":
            text = [text.replace(str(answers["loss"]), "NaN", 1), text.replace(str(answers["loss"]), '"0.31"', 1), text[:-20], text][k % 4]
        (root / f"S{k % 4 + 1}" / f"{sid}.json").write_text(text)
    print(f"made {n} submissions in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return manifest_path, root


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="students (default 20,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument("--seed", default="bench-seed")
    parser.add_argument("--keep", metavar="DIR", help="build the class in DIR and keep it (a class already there is reused)")
    parser.add_argument(
        "--outputs", metavar="DIR", help="where grade writes its outputs (default: beside the class); a folder in memory (/dev/shm) leaves the disk out"
    )
    args = parser.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="hwgen-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if (folder / "manifest.json").is_file() and (folder / "submissions").is_dir():
            manifest, root = folder / "manifest.json", folder / "submissions"
            print(f"reusing the class in {folder}", file=sys.stderr)
        else:
            manifest, root = make_class(folder, args.n, args.seed)
        # An installed hwgen runs from compiled bytecode (pip compiles it on install). A checkout
        # run with PYTHONDONTWRITEBYTECODE set (as some sandboxes and CI images do) would compile
        # every module on every run instead, billing each timed run for it: compile them first.
        compileall.compile_dir(Path(grader.__file__).parent, quiet=1)
        baseline_cmd = [sys.executable, "-c", BASELINE, str(root)]
        def grade_cmd(out: Path) -> list[str]:
            return [sys.executable, "-m", "grader", "grade", str(root), "--manifest", str(manifest), "--out", str(out)]

        times: dict[str, list[float]] = {"baseline": [], "grade": [], "regrade": []}
        # A new folder for each run, removed only after all timings: deleting 20,000 files slows
        # the creation of files for a while after (by 10x, seen on ext4 with discard), which
        # would bill a timed run for an earlier one's clean-up.
        runs = Path(tempfile.mkdtemp(prefix="runs-", dir=args.outputs or folder))
        outs = [runs / f"grades-{n}" for n in range(args.repeats)]
        _time(baseline_cmd)  # warm the page cache so that neither side pays for the first read
        for out in outs:
            times["baseline"].append(_time(baseline_cmd))
            times["grade"].append(_time(grade_cmd(out)))
            times["regrade"].append(_time(grade_cmd(out)))
        shutil.rmtree(runs, ignore_errors=True)
        median = {name: statistics.median(values) for name, values in times.items()}
        print(f"N = {args.n:,} submissions, {args.repeats} repeats, medians:")
        for name in ("baseline", "grade", "regrade"):
            ratio = "" if name == "baseline" else f"  ({median[name] / median['baseline']:.2f} x baseline)"
            runs = ", ".join(f"{t:.2f}" for t in times[name])
            print(f"  {name:9s} {median[name]:7.2f} s{ratio}   runs: {runs}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
