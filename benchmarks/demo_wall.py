"""Wall time of ``bayesfm demo`` as a user meets it after install (issue 19: under 150 s).

Run:  python benchmarks/demo_wall.py [--repeats 1] [--checkouts DIR ...]
                                     [--out benchmarks/demo_wall.json]

Each repeat runs ``bayesfm demo`` in a fresh process into a fresh folder with an empty
compilation cache (as on a freshly installed machine), and records its wall time, how many
of the three stars converged, and how many APOGEE labels fell inside their 95% intervals.
``--checkouts``: other source trees of bayesfm (e.g. a ``git worktree`` of an earlier
commit), timed side by side, interleaved repeat by repeat. Absolute times on a shared
machine drift: run it with nothing else on the cores.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).with_suffix(".json")
REPO = Path(__file__).resolve().parents[1]


def run_demo(checkout: Path) -> dict:
    """One cold ``bayesfm demo`` of ``checkout``: wall seconds, stars converged, labels
    inside 95%."""
    with tempfile.TemporaryDirectory() as scratch:
        env = os.environ | {
            "BAYESFM_COMPILATION_CACHE": str(Path(scratch) / "cache"),
            "PYTHONPATH": str(checkout),
        }
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        command = [sys.executable, "-m", "bayesfm.cli", "demo", "--out", f"{scratch}/demo"]
        t0 = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=checkout)
        seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"bayesfm demo failed ({done.returncode}):\n{done.stderr[-2000:]}")
    inside = re.search(r"95% interval .*: (\d+) of (\d+)", done.stdout)
    return {
        "wall_seconds": seconds,
        "converged": len(re.findall(r": converged \(", done.stdout)),
        "not_converged": len(re.findall(r": NOT converged \(", done.stdout)),
        "labels_inside_95": int(inside.group(1)),
        "labels_compared": int(inside.group(2)),
        "output": done.stdout,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--checkouts", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    checkouts = [REPO, *(c.resolve() for c in args.checkouts)]
    runs = {str(c): [] for c in checkouts}
    for repeat in range(args.repeats):
        for checkout in checkouts:
            r = run_demo(checkout)
            runs[str(checkout)].append(r)
            print(
                f"{checkout} run {repeat + 1}: {r['wall_seconds']:.1f} s wall, {r['converged']} "
                f"of 3 converged, {r['labels_inside_95']} of {r['labels_compared']} inside 95%"
            )
    summary = {
        checkout: statistics.median(r["wall_seconds"] for r in rs) for checkout, rs in runs.items()
    }
    for checkout, seconds in summary.items():
        print(f"{checkout}: median wall {seconds:.1f} s")
    result = {"median_wall_seconds": summary, "cpu_count": os.cpu_count(), "runs": runs}
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
