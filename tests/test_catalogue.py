"""Catalogue mode: every star exactly once, resumable after a kill, Dask and worker processes
== one chunk at a time in this process."""

import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import psutil
import pytest
from dask import distributed

from bayesfm.catalogue.chunk import _record_importance
from bayesfm.catalogue.config import CatalogueConfig
from bayesfm.catalogue.run import run_catalogue
from bayesfm.catalogue.store import load_costs, load_draws
from bayesfm.common.errors import DataError
from bayesfm.infer.importance import ImportanceConfig, ImportanceResult
from bayesfm.infer.settings import NutsConfig
from bayesfm.infer.setup import StarInference, amortized_labels
from bayesfm.infer.trust import TrustCriteria
from bayesfm.model.foundation_model import build_model

FAST = CatalogueConfig(
    chunk_size=3,
    outside_domain="posterior",  # the untrained model's amortized labels may lie anywhere
    nuts=NutsConfig(num_warmup=30, num_samples=30, max_tree_depth=4),
    importance=ImportanceConfig(
        num_draws=200,
        mode_rounds=2,
        quasi_newton_steps=2,
        refinements=1,
        refine_draws=200,
        num_keep=100,
        top_up_draws=200,
    ),
)


@pytest.fixture(scope="module")
def stars(example_stars):
    return example_stars.tokens.take(np.arange(7))


@pytest.fixture(scope="module")
def in_process(tiny_model_path, stars, tmp_path_factory):
    out = tmp_path_factory.mktemp("in_process")
    setup = StarInference.default(tiny_model_path)
    table = run_catalogue(stars, out, FAST, setup, tiny_model_path, progress=False)
    return out, table


@pytest.mark.slow
def test_every_star_once_with_its_path_and_summaries(in_process, stars):
    out, table = in_process
    assert table["source_id"].tolist() == stars.source_id.astype(np.int64).tolist()
    assert set(table["path"]) <= {"importance", "nuts"}
    assert np.isfinite(table["teff_median"]).all()
    assert (table["teff_q16"] <= table["teff_median"]).all()
    assert (table["teff_median"] <= table["teff_q84"]).all()
    on_disk = pd.read_csv(out / "catalogue.csv")
    assert len(on_disk) == len(stars) and sorted(os.listdir(out / "chunks")) == [
        f"chunk_00000{i}{suffix}" for i in range(3) for suffix in (".csv", "_cost.json")
    ]
    assert (out / "catalogue.fits").exists()


@pytest.mark.slow
def test_each_chunk_accounts_for_its_time_and_evaluations(in_process):
    out, table = in_process
    costs = load_costs(out)
    assert [c["stars"] for c in costs] == [3, 3, 1]
    for index, cost in enumerate(costs):
        stages = cost["stages"]
        assert {"amortized prediction", "mode", "draws", "psis"} <= set(stages)
        assert 0 < sum(stages.values()) <= cost["seconds"]
        chunk = table.iloc[3 * index : 3 * index + cost["stars"]]
        drawn = cost["evaluations"]
        assert drawn["importance_draws"] >= FAST.importance.num_draws * cost["stars"]
        searches = FAST.importance.mode_searches * cost["stars"]  # one per start used
        assert drawn["mode_gradients"] == searches * 2 * (1 + 2)
        assert drawn["mode_hessians"] == searches * (2 + 1)
        assert drawn["mode_scout_densities"] == FAST.importance.scout_draws * cost["stars"]
        assert (drawn["nuts_leapfrog"] > 0) == (chunk["path"] == "nuts").any()
        assert ("nuts fallback" in stages) == (chunk["path"] == "nuts").any()


@pytest.mark.slow
def test_forced_paths_are_recorded(tiny_model_path, stars, tmp_path):
    setup = StarInference.default(tiny_model_path)
    config = CatalogueConfig(**{**FAST.__dict__, "method": "nuts"})
    table = run_catalogue(
        stars.take([0, 1]), tmp_path, config, setup, tiny_model_path, progress=False
    )
    assert (table["path"] == "nuts").all()
    assert np.isfinite(table["max_rhat"]).all() and (table["divergences"] >= 0).all()


@pytest.mark.slow
def test_stars_outside_the_domain_get_the_amortized_labels_flagged(
    tiny_model_path, stars, tmp_path
):
    setup = StarInference.default(tiny_model_path)
    nowhere = TrustCriteria(domain_quantile=1.0)  # every star's amortized labels outside
    config = dataclasses.replace(FAST, outside_domain="amortized", trust=nowhere)
    few = stars.take([0, 1, 2])
    table = run_catalogue(few, tmp_path, config, setup, tiny_model_path, progress=False)
    assert (table["path"] == "amortized").all() and not table["ok"].any()
    assert not table["trusted"].any()
    assert all(flag.startswith("outside the emulator's training domain") for flag in table["flags"])
    mean, sigma = amortized_labels(setup, few)
    drawn = table[["teff_median", "logg_median"]].to_numpy()
    # 100 Gaussian draws per star: the median within 0.4 sigma (3 standard errors)
    assert np.all(np.abs(drawn - mean[:, :2]) < 0.4 * sigma[:, :2])
    np.testing.assert_allclose(table["teff_sd"], sigma[:, 0], rtol=0.25)
    cost = load_costs(tmp_path)[0]
    assert cost["evaluations"]["importance_draws"] == cost["evaluations"]["mode_gradients"] == 0
    assert "mode" not in cost["stages"]


@pytest.mark.slow
def test_saved_draws_load_back_in_star_order(tiny_model_path, stars, tmp_path):
    with pytest.raises(DataError, match="no saved draws"):
        load_draws(tmp_path)
    setup = StarInference.default(tiny_model_path)
    config = CatalogueConfig(
        **{**FAST.__dict__, "method": "importance", "chunk_size": 2, "save_draws": True}
    )
    table = run_catalogue(stars.take([0, 1, 2]), tmp_path, config, setup, progress=False)
    draws = load_draws(tmp_path)
    assert draws.shape == (3, FAST.importance.num_keep, 5)
    np.testing.assert_allclose(np.median(draws[:, :, 0], axis=1), table["teff_median"], rtol=1e-4)


@pytest.mark.slow
def test_resume_refuses_other_settings(in_process, stars, tiny_model_path):
    out, _ = in_process
    other = CatalogueConfig(**{**FAST.__dict__, "seed": 1})
    with pytest.raises(DataError, match=r"different settings \(config\.seed: 0 there, 1 now"):
        run_catalogue(stars, out, other, model_path=tiny_model_path, progress=False)


@pytest.mark.slow
def test_resume_refuses_another_model_or_noise_model(in_process, stars, tiny_model_path):
    """Same model path and settings, but other weights or noise: the chunks would not mix."""
    out, _ = in_process
    setup = StarInference.default(tiny_model_path)
    _, other_params = build_model(setup.model.config, seed=6)
    other_model = dataclasses.replace(setup.model, params=other_params)
    other_noise = dataclasses.replace(setup.noise, inflation=setup.noise.inflation * 2)
    other_tails = dataclasses.replace(setup.noise, tail_dof=3.0)
    factors = {"emulator_sigma_factors": {"xp_410": 0.5}}
    other_factors = dataclasses.replace(setup.model, info={**setup.model.info, **factors})
    for other in (
        dataclasses.replace(setup, model=other_model),
        dataclasses.replace(setup, noise=other_noise),
        dataclasses.replace(setup, noise=other_tails),
        dataclasses.replace(setup, model=other_factors),
    ):
        assert other.fingerprint() != setup.fingerprint()
        with pytest.raises(DataError, match=r"different settings \(model_prior_noise_sha256"):
            run_catalogue(stars, out, FAST, other, tiny_model_path, progress=False)


@pytest.mark.slow
def test_anchored_run_resumes_only_with_the_same_anchors(tiny_model_path, stars, tmp_path):
    setup = StarInference.default(tiny_model_path)
    config = CatalogueConfig(**{**FAST.__dict__, "method": "importance"})
    two = stars.take([0, 1])
    anchors = np.array([[4800.0, 2.5, 0.0, 0.0, 0.05], [5800.0, 4.4, -0.2, 0.1, 0.02]])
    table = run_catalogue(two, tmp_path, config, setup, progress=False, anchors=anchors)
    assert np.isfinite(table["teff_median"]).all()
    again = run_catalogue(two, tmp_path, config, setup, progress=False, anchors=anchors)
    pd.testing.assert_frame_equal(again, table)
    for other in (anchors + 1.0, None):
        with pytest.raises(DataError, match=r"different settings \(anchors_sha256"):
            run_catalogue(two, tmp_path, config, setup, progress=False, anchors=other)


def test_config_round_trip_and_unknown_setting():
    assert CatalogueConfig.from_dict(FAST.to_dict()) == FAST
    with pytest.raises(DataError, match="unknown catalogue setting"):
        CatalogueConfig.from_dict({"chunksize": 3})
    with pytest.raises(DataError, match="unknown method"):
        CatalogueConfig(method="mcmc")
    with pytest.raises(DataError, match="unknown outside_domain"):
        CatalogueConfig(outside_domain="prior")


@pytest.mark.slow
def test_killed_run_resumes_with_every_star_once(tiny_model_path, in_process, tmp_path):
    """SIGKILL a ``bayesfm catalogue`` process after its first chunk; rerun; compare."""
    out = tmp_path / "killed"
    (tmp_path / "config.json").write_text(json.dumps(FAST.to_dict()))
    command = [
        sys.executable,
        "-m",
        "bayesfm.cli",
        "catalogue",
        "--split",
        "test",
        "--limit",
        "7",
        "--out",
        str(out),
        "--config",
        str(tmp_path / "config.json"),
        "--model",
        str(tiny_model_path),
        "--quiet",
    ]
    process = subprocess.Popen(command, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    first = out / "chunks" / "chunk_000000.csv"
    deadline = time.monotonic() + 600
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), "the first chunk was never written"
    workers = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "worker processes outlived the killed run"
    assert not (out / "catalogue.csv").exists()
    left = sorted(os.listdir(out / "chunks"))
    finished = (".csv", "_cost.json")
    assert all(name.endswith(finished) for name in left), left  # no half-written files

    assert subprocess.run(command, env={**os.environ, "JAX_PLATFORMS": "cpu"}).returncode == 0
    table = pd.read_csv(out / "catalogue.csv")
    assert len(table) == 7 and table["source_id"].is_unique
    assert np.isfinite(table["teff_median"]).all()
    assert (out / "catalogue.png").stat().st_size > 0  # the overview figure


@pytest.mark.slow
def test_dask_cluster_of_two_workers_matches_in_process(
    in_process, stars, tiny_model_path, tmp_path
):
    _, expected = in_process
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        table = run_catalogue(
            stars, tmp_path, FAST, model_path=tiny_model_path, client=client, progress=False
        )
    timing = ["seconds"]
    pd.testing.assert_frame_equal(
        table.drop(columns=timing), expected.drop(columns=timing), check_exact=False, rtol=1e-5
    )


@pytest.mark.slow
def test_two_worker_processes_give_the_same_catalogue(in_process, stars, tiny_model_path, tmp_path):
    _, expected = in_process
    setup = StarInference.default(tiny_model_path)
    table = run_catalogue(stars, tmp_path, FAST, setup, tiny_model_path, workers=2, progress=False)
    timing = ["seconds"]
    pd.testing.assert_frame_equal(
        table.drop(columns=timing), expected.drop(columns=timing), check_exact=False, rtol=1e-5
    )
    # more chunks than are handed over at once: every one is fitted, once
    single = dataclasses.replace(FAST, chunk_size=1)
    table = run_catalogue(stars, tmp_path / "single", single, setup, tiny_model_path, workers=2)
    assert table["source_id"].tolist() == stars.source_id.astype(np.int64).tolist()
    assert np.isfinite(table["teff_median"]).all()
    assert not multiprocessing.active_children()  # the workers ended with the run


@pytest.mark.slow
def test_a_killed_worker_process_leaves_its_chunks_to_fresh_workers(
    stars, tiny_model_path, tmp_path, capfd
):
    setup = StarInference.default(tiny_model_path)
    single = dataclasses.replace(FAST, chunk_size=1)
    with ThreadPoolExecutor(1) as runner:
        args = (stars, tmp_path, single, setup, tiny_model_path)
        run = runner.submit(run_catalogue, *args, workers=2, progress=False)
        deadline = time.monotonic() + 300
        while not multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
        table = run.result(timeout=900)
    assert table["source_id"].tolist() == stars.source_id.astype(np.int64).tolist()
    assert np.isfinite(table["teff_median"]).all()
    assert "unfinished chunks go to fresh workers" in capfd.readouterr().err


@pytest.mark.slow
def test_worker_processes_refuse_a_setup_they_cannot_rebuild(stars, tiny_model_path, tmp_path):
    setup = StarInference.default(tiny_model_path)
    other = dataclasses.replace(
        setup, noise=dataclasses.replace(setup.noise, inflation=setup.noise.inflation * 2)
    )
    with pytest.raises(DataError, match="run it with workers=1"):
        run_catalogue(stars, tmp_path, FAST, other, tiny_model_path, workers=2, progress=False)
    with pytest.raises(DataError, match="workers must be at least 1"):
        run_catalogue(stars, tmp_path / "none", FAST, setup, tiny_model_path, workers=0)
    assert not multiprocessing.active_children()


@pytest.mark.slow
def test_trust_columns_are_filled_and_trusted_needs_the_samplers_verdict(in_process):
    _, table = in_process
    fitted = table[table["path"].isin(["importance", "nuts"])]
    assert len(fitted) and fitted["fit_p"].between(0, 1).all()
    assert (fitted["fit_dof"] > 0).all() and fitted["outside_domain_fraction"].between(0, 1).all()
    assert not (table["trusted"] & ~table["ok"]).any()
    flagged = fitted[~fitted["trusted"] & fitted["ok"]]
    assert all(("emulator cannot" in f) or ("domain" in f) for f in flagged["flags"])


def test_a_failed_star_outside_the_domain_keeps_its_importance_draws_instead_of_nuts():
    class Identity:
        def physical(self, z):
            return np.asarray(z)

    setup = type("Setup", (), {"scaling": Identity()})()
    n, keep = 3, FAST.importance.num_keep
    result = ImportanceResult(
        z=np.ones((n, keep, 5)),
        khat=np.array([0.3, 1.2, 1.2]),
        ess=np.array([900.0, 5.0, 5.0]),
        accepted=np.array([True, False, False]),
        loc=np.zeros((n, 5)),
        chol=np.tile(np.eye(5), (n, 1, 1)),
        evaluations=np.full(n, 100),
        mode_evaluations={},
    )
    table = pd.DataFrame(
        {"khat": np.nan, "importance_ess": np.nan, "path": "", "ok": False, "flags": ""},
        index=range(n),
    )
    draws = np.full((n, keep, 5), np.nan, np.float32)
    inside = np.array([True, True, False])
    to_nuts = _record_importance(setup, table, draws, np.arange(n), result, inside, FAST)
    assert to_nuts.tolist() == [False, True, False]
    assert table["path"].tolist() == ["importance", "", "importance"]
    assert table["ok"].tolist() == [True, False, False]
    assert np.isfinite(draws[2]).all() and np.isnan(draws[1]).all()
