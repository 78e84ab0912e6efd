"""What the persistent compilation cache saves a catalogue run (``bayesfm.common.compile_cache``).

Run:  python benchmarks/compile_cache.py [--stars 128] [--out runs/compile_cache]

Runs ``bayesfm catalogue --split test --limit N`` three times, each in a fresh process into a
fresh folder: with the cache off, with an empty cache (the run that fills it), and with the
filled cache. Prints per run the wall time of the command and of its first and last chunk
(the first compiles everything, the last only what is new), and writes the figures to
benchmarks/compile_cache.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bayesfm.catalogue.store import load_costs

OUT = Path(__file__).with_suffix(".json")


def run_catalogue(stars: int, out: Path, cache: str) -> dict:
    """One catalogue run in its own process; wall time and its chunks' seconds."""
    env = os.environ | {"BAYESFM_COMPILATION_CACHE": cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = ["bayesfm", "catalogue", "--split", "test", "--limit", str(stars)]
    start = time.perf_counter()
    subprocess.run([*command, "--out", str(out), "--quiet"], env=env, check=True)
    wall = time.perf_counter() - start
    chunks = [cost["seconds"] for cost in load_costs(out)]
    return {"wall_seconds": wall, "chunk_seconds": chunks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stars", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("runs/compile_cache"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    cache = args.out / "cache"
    runs = {}
    for name, setting in (("cache off", "off"), ("empty cache", cache), ("filled cache", cache)):
        runs[name] = run_catalogue(args.stars, args.out / name.replace(" ", "_"), str(setting))
        r = runs[name]
        print(
            f"{name:<13} wall {r['wall_seconds']:6.1f} s, first chunk "
            f"{r['chunk_seconds'][0]:5.1f} s, last chunk {r['chunk_seconds'][-1]:5.1f} s",
            flush=True,
        )
    saved = runs["cache off"]["wall_seconds"] - runs["filled cache"]["wall_seconds"]
    print(f"the filled cache saves {saved:.1f} s of {runs['cache off']['wall_seconds']:.1f} s")
    result = {"stars": args.stars, "python": sys.version.split()[0], "runs": runs}
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
