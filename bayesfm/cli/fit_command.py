"""``bayesfm fit`` and ``bayesfm demo``: posteriors for a few stars, with plots."""

import sys
from dataclasses import replace

from bayesfm.cli.inputs import load_stars
from bayesfm.common.errors import DataError
from bayesfm.infer.settings import ONE_STAR_NUTS

__all__ = ["cmd_fit"]


def _print_fit(report, out, plots: bool) -> int:
    """Print each fitted star and a closing count; the exit code (0, or 1 if nothing was
    fitted, or 3 if some stars were skipped)."""
    for source, table, flags in report.fitted:
        verdict = "converged" if flags["converged"] else "NOT converged"
        checks = (
            f"ELBO {'settled' if flags['elbo_settled'] else 'still moving'}, "
            f"PSIS k-hat {flags['khat']:.2f}"
            if "khat" in flags
            else f"max R-hat {flags['max_rhat']:.3f}, min bulk ESS {flags['min_ess_bulk']:.0f}, "
            f"{flags['divergences']} divergences"
        )
        print(f"\nGaia DR3 {source}: {verdict} ({checks}); fit p-value {flags['fit_p']:.2g}")
        if not flags["trusted"]:
            print(f"  FLAGGED, do not trust: {'; '.join(flags['notes'])}")
        print(
            f"  {'label':<8} {'median':>10} {'16%':>10} {'84%':>10} {'reference':>10} "
            f"{'+/-':>8}  in 95%"
        )
        for name, r in table.iterrows():
            inside = {True: "yes", False: "NO"}.get(r["reference_in_95"], "-")
            print(
                f"  {name:<8} {r['q50']:>10.4g} {r['q16']:>10.4g} {r['q84']:>10.4g} "
                f"{r['reference']:>10.4g} {r['reference_error']:>8.2g}  {inside}"
            )
    for source, reason in report.skipped:
        print(f"\nGaia DR3 {source}: skipped ({reason})")
    fitted, skipped, done = len(report.fitted), len(report.skipped), len(report.already_done)
    if fitted:
        print(
            f"\nresults in {out}/: <source_id>.nc (ArviZ), summary.csv"
            + (", *_corner/trace/spectrum.png" if plots else "")
        )
    compared = [
        inside for _, table, _ in report.fitted for inside in table["reference_in_95"].dropna()
    ]
    if compared:
        print(
            f"reference labels inside the posterior's 95% interval (their errors folded in): "
            f"{sum(compared)} of {len(compared)}"
        )
    flagged = sum(not flags["trusted"] for _, _, flags in report.fitted)
    print(
        f"{fitted} fitted ({flagged} flagged), {skipped} skipped (skipped.csv), {done} already done"
    )
    if fitted + done == 0:
        print("bayesfm: error: no star was fitted", file=sys.stderr)
        return 1
    return 3 if skipped else 0


def cmd_fit(args) -> int:
    import matplotlib

    matplotlib.use("Agg")  # the command writes its figures to files; no window is needed
    from bayesfm.fitting import fit_stars, prepare_output_dir
    from bayesfm.infer.setup import StarInference

    if args.max_samples is not None and args.max_samples < args.samples:
        raise DataError(f"--max-samples {args.max_samples} is below --samples {args.samples}")
    prepare_output_dir(args.out)
    setup = StarInference.default(args.model)
    stars = load_stars(args, setup.model.vocabulary.binning)
    if len(stars) == 0:
        raise DataError("the input holds no stars")
    rows = args.rows if args.rows else range(min(args.n_stars, len(stars)))
    for row in rows:
        if not 0 <= row < len(stars):
            raise DataError(f"row {row} is out of range: the input has {len(stars)} stars")
    nuts = replace(
        ONE_STAR_NUTS, num_warmup=args.warmup, num_samples=args.samples, num_chains=args.chains
    )
    report = fit_stars(
        setup,
        stars,
        rows,
        args.out,
        args.method,
        args.seed,
        nuts,
        args.max_samples,
        plots=not args.no_plots,
        model_name=str(args.model or "shipped default"),
    )
    return _print_fit(report, args.out, plots=not args.no_plots)
