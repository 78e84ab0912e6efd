"""Catalogue worker processes keep to their own share of the CPU cores."""

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from bayesfm.catalogue.workers import _start_worker, core_shares

pinning = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a system that pins processes, with two cores or more",
)


@pinning
def test_the_cores_are_dealt_out_to_the_workers():
    cores = sorted(os.sched_getaffinity(0))
    assert core_shares(1) == [cores]
    shares = core_shares(2)
    assert sorted(shares[0] + shares[1]) == cores
    assert not set(shares[0]) & set(shares[1])
    assert shares[0][0] == cores[0] and shares[1][0] == cores[1]  # dealt in turn
    assert core_shares(len(cores) + 1) is None  # fewer cores than workers: none pinned


def _cores_after_a_pause(_):
    time.sleep(0.5)  # so that the other worker takes the next task
    return sorted(os.sched_getaffinity(0))


@pinning
def test_each_worker_process_runs_on_its_share():
    context = multiprocessing.get_context("spawn")
    shares = core_shares(2)
    started = context.Value("i", 0)
    initargs = (None, shares, started)
    with ProcessPoolExecutor(2, context, _start_worker, initargs) as pool:
        seen = list(pool.map(_cores_after_a_pause, range(4)))
    assert all(cores in shares for cores in seen)
    assert started.value == 2
