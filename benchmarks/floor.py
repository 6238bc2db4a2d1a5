"""How fast could `hwgen grade` be on this machine? A floor, against the same baseline.

    python benchmarks/floor.py --class ~/class20k          # a class kept by bench_grade.py --keep
    python benchmarks/floor.py --class ~/class20k --repeats 7 --outputs /dev/shm

Times, alternately and in fresh processes, on a class made by `bench_grade.py --keep`:

    baseline   a Python process that reads and JSON-parses every file (bench_grade.BASELINE)
    grade      `hwgen grade` as it is
    no-texts   the same, but each student's texts (the results.json record, the CSV rows and
               the feedback document) are those of the first student with the same pattern
               of results: what is left of the per-student text work is nothing but the file
    no-texts+  as no-texts, and the manifest is taken ready-made (unpickled) instead of being
               read and validated

The last two write wrong outputs on purpose: they measure what everything else costs, so the
gap between them and the baseline is what no speed-up of the texts or of the manifest can
close. Standard library and hwgen only.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_grade import BASELINE

# Run in the timed process: hwgen's grade with parts of its work replaced (see the docstring).
GRADE_WITH = r"""
import pickle, sys
mode, manifest_pickle = sys.argv[1], sys.argv[2]
sys.argv = ["hwgen", "grade", *sys.argv[3:]]
from grader import cli, grading, reports
if "texts" in mode:
    texts, first = reports.graded_texts, {}
    def graded_texts(group, row, gradebook, reveal, parts):
        key = (id(group.layout), group.codes[row].tobytes())
        if key not in first:
            first[key] = texts(group, row, gradebook, reveal, parts)
        row_, feedback = first[key]
        return row_._replace(feedback_stem=group.students[row].extra.get("file_stem")), feedback
    reports.graded_texts = graded_texts
if "manifest" in mode:
    grading.read_manifest_parts = lambda path: pickle.load(open(manifest_pickle, "rb"))
cli.main()
"""


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--class", dest="folder", required=True, type=Path, help="a class kept by bench_grade.py --keep")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--outputs", type=Path, default=None, help="where grade writes (default: a temporary folder)")
    args = parser.parse_args()
    from grader import grading

    submissions, manifest = args.folder / "submissions", args.folder / "manifest.json"
    work = Path(tempfile.mkdtemp(prefix="hwgen-floor-", dir=args.outputs))
    try:
        manifest_pickle = work / "manifest.pickle"
        manifest_pickle.write_bytes(pickle.dumps(grading.read_manifest_parts(manifest), protocol=pickle.HIGHEST_PROTOCOL))
        runs = {
            "baseline": lambda out: [sys.executable, "-c", BASELINE, str(submissions)],
            "grade": lambda out: [sys.executable, "-m", "grader", "grade", str(submissions), "--manifest", str(manifest), "--out", str(out)],
            **{
                name: (lambda mode: lambda out: [sys.executable, "-c", GRADE_WITH, mode, str(manifest_pickle), str(submissions), "--manifest", str(manifest), "--out", str(out)])(mode)
                for name, mode in (("no-texts", "texts"), ("no-texts+", "texts,manifest"))
            },
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        _time(runs["baseline"](None))  # warm the page cache
        for repeat in range(args.repeats):
            for name, command in runs.items():
                times[name].append(_time(command(work / f"{name}-{repeat}")))
        median = {name: statistics.median(values) for name, values in times.items()}
        print(f"{len(list(submissions.rglob('*.json'))):,} submissions, {args.repeats} repeats, medians:")
        for name in runs:
            ratio = "" if name == "baseline" else f"  ({median[name] / median['baseline']:.2f} x baseline)"
            print(f"  {name:<10} {median[name]:5.2f} s{ratio}   runs: {', '.join(f'{t:.2f}' for t in times[name])}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
