"""What every section of the validation report shares: the shipped inference setup, the
held-out stars, the simulated SBC stars and the resumable runs under the work dir."""

import json
import time
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import jax
import numpy as np
from report_config import ValidationConfig

from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_draws
from bayesfm.infer.batched_svi import batched_svi_draws
from bayesfm.infer.setup import StarInference
from bayesfm.infer.simulated import simulated_catalogue
from bayesfm.sources.library import load_library
from bayesfm.tokens.split import split_mask
from bayesfm.tokens.star_tokens import StarTokens


class ReportContext:
    """The inputs of the report's sections, loaded once.

    Attributes:
        config: The report's ``ValidationConfig``.
        setup: The shipped ``StarInference``.
        work: The folder of the resumable runs.
        tokens: The whole library's tokens; ``splits``: split name -> star mask.
        test: The held-out stars (the first ``config.test_stars`` of the test split).
        snr: Their XP signal-to-noise.
    """

    def __init__(self, config: ValidationConfig, setup: StarInference):
        self.config, self.setup = config, setup
        self.work = Path(config.work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        library = load_library(binning=setup.model.vocabulary.binning)
        self.tokens = library.tokens
        self.splits = {
            s: split_mask(self.tokens.source_id, s) for s in ("train", "validation", "test")
        }
        test_rows = np.flatnonzero(self.splits["test"])[: config.test_stars]
        self.test = self.tokens.take(test_rows)
        self.snr = library.snr[test_rows]

    @cached_property
    def check(self) -> StarTokens:
        """The method cross-check's stars: the first ``method_check_stars`` held-out stars."""
        return self.test.take(np.arange(min(self.config.method_check_stars, len(self.test))))

    @cached_property
    def sbc(self) -> tuple[StarTokens, np.ndarray]:
        """The SBC's simulated stars (templates: the first ``sbc_stars`` held-out stars) and
        their true labels."""
        return self.simulated_sbc(self.setup)

    def simulated_sbc(self, setup: StarInference) -> tuple[StarTokens, np.ndarray]:
        """The SBC's stars and true labels simulated with ``setup`` (the same prior and noise
        draws whatever its label scatter)."""
        templates = self.test.take(np.arange(min(self.config.sbc_stars, len(self.test))))
        return simulated_catalogue(setup, templates, jax.random.PRNGKey(self.config.seed + 1))

    def catalogue_draws(
        self, stars: StarTokens, folder, settings: CatalogueConfig, anchors=None, setup=None
    ):
        """Run (or resume) a catalogue under the work dir (with ``setup``, default the shipped
        one): its table, draws [n, S, 5] in star order and the seconds its chunks took when
        first computed."""
        table = run_catalogue(
            stars, self.work / folder, settings, setup or self.setup, anchors=anchors
        )
        draws = load_draws(self.work / folder)
        return {"table": table, "draws": draws, "seconds": float(table["seconds"].sum())}

    def svi_draws(self, stars: StarTokens, file, seed: int, anchors=None):
        """Batched SVI draws [n, S, 5] of ``stars`` and the seconds they took, cached in
        ``file`` under the work dir for the same stars, settings, seed and sigma anchors."""
        path = self.work / file
        anchored = "amortized" if anchors is None else np.asarray(anchors).round(4).tolist()
        settings = {
            **asdict(self.config.svi),
            "seed": seed,
            "anchors": anchored,
            "setup": self.setup.fingerprint(),
        }
        settings = json.dumps(settings, sort_keys=True)
        if path.exists():
            cached = np.load(path, allow_pickle=False)
            same = {"source_id", "settings", "seconds"} <= set(cached.files) and (
                np.array_equal(cached["source_id"], stars.source_id)
                and str(cached["settings"]) == settings
            )
            if same:
                return {"draws": cached["draws"], "seconds": float(cached["seconds"])}
        start = time.perf_counter()
        key = jax.random.PRNGKey(seed)
        draws = batched_svi_draws(self.setup, stars, key, self.config.svi, anchors)
        seconds = time.perf_counter() - start
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            draws=draws,
            source_id=stars.source_id,
            settings=np.str_(settings),
            seconds=seconds,
        )
        return {"draws": draws, "seconds": seconds}


def timed(name: str, fn, *args):
    """``fn(*args)``, printing how long it took (progress of a long report)."""
    start = time.perf_counter()
    out = fn(*args)
    print(f"[report] {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return out
