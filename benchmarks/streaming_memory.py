"""Peak memory of reading a large catalogue input whole vs streamed part by part.

Run:  python benchmarks/streaming_memory.py [--rows 100000] [--rows-per-part 10000]
      [--work runs/streaming_bench]

Writes synthetic inputs of ``--rows`` stars (real Gaia DR3 archive records from
tests/data repeated under new source ids): a Parquet table with the sampled XP flux as list
columns, and a directory of archive XP_CONTINUOUS csv files of ``--rows-per-part`` rows
each. Each way of reading runs in a fresh process that turns every star into tokens, as
``bayesfm catalogue`` does before fitting, and reports its peak resident memory (VmHWM):
the Parquet table read whole and streamed, the XP directory streamed, and the imports
alone (the baseline every reading starts from). Writes
benchmarks/streaming_memory.json. (Fitting adds a fixed amount per chunk, not per star.)
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

RAW = Path("tests/data/XP_CONTINUOUS_RAW.csv")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rows-per-part", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=Path("runs/streaming_bench"))
    parser.add_argument("--json", default="benchmarks/streaming_memory.json")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: one reading
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure, args.work, args.rows_per_part)
    args.work.mkdir(parents=True, exist_ok=True)
    write_inputs(args.work, args.rows, args.rows_per_part)
    results = {"rows": args.rows, "rows_per_part": args.rows_per_part, "readings": {}}
    for mode in ("imports_only", "parquet_whole", "parquet_streamed", "xp_directory_streamed"):
        command = [sys.executable, __file__, "--measure", mode, "--work", str(args.work)]
        command += ["--rows-per-part", str(args.rows_per_part)]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results["readings"][mode] = json.loads(out.strip().splitlines()[-1])
        print(mode, results["readings"][mode], flush=True)
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.json}")


def write_inputs(work: Path, rows: int, rows_per_part: int) -> None:
    """The synthetic Parquet table and XP directory (kept between runs of the same size)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from bayesfm.sources.archive import sample_xp_continuous

    marker = work / f"inputs_{rows}_{rows_per_part}.done"
    if marker.exists():
        return
    raw = pd.read_csv(RAW)
    spectra = sample_xp_continuous(RAW)
    (work / "xp").mkdir(exist_ok=True)
    writer = None
    for first in range(0, rows, rows_per_part):
        n = min(rows_per_part, rows - first)
        pick = np.arange(n) % len(raw)
        ids = 10**18 + first + np.arange(n)
        records = raw.iloc[pick].copy()
        records["source_id"] = ids
        records.to_csv(work / "xp" / f"XpContinuous_{first:09d}.csv", index=False)
        table = pa.table(
            {
                "source_id": ids,
                "flux": list(spectra["flux"][pick]),
                "flux_error": list(spectra["flux_error"][pick]),
            }
        )
        writer = writer or pq.ParquetWriter(work / "stars.parquet", table.schema)
        writer.write_table(table)
    writer.close()
    marker.write_text("")


def measure(mode: str, work: Path, rows_per_part: int) -> None:
    """Read one input one way; print stars, seconds and peak memory as JSON."""
    import pyarrow.parquet  # noqa: F401  (in every reading's baseline)

    from bayesfm.sources import parts

    start = time.perf_counter()
    stars = 0
    if mode == "parquet_whole":
        import pyarrow.parquet as pq

        from bayesfm.tokens.specs import tokens_from_columns

        table = pq.read_table(work / "stars.parquet")
        columns = {
            name: parts.arrow_column_values(table[name].combine_chunks())
            for name in table.column_names
        }
        stars = len(tokens_from_columns(columns))
    elif mode != "imports_only":
        stream = (
            parts.parquet_parts(work / "stars.parquet", rows_per_part=rows_per_part)
            if mode == "parquet_streamed"
            else parts.xp_file_parts(work / "xp")
        )
        stars = sum(len(part.load()) for part in stream)
    peak_mib = _peak_rss_mib()
    print(
        json.dumps(
            {"stars": stars, "seconds": time.perf_counter() - start, "peak_rss_mib": peak_mib}
        )
    )


def _peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM on Linux (ru_maxrss would also count the
    parent's memory at the fork that started this process)."""
    status = Path("/proc/self/status")
    if status.exists():
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024  # macOS: bytes


if __name__ == "__main__":
    main()
