"""bayesfm turns off XLA's multi-threaded CPU Eigen pool unless the user chose otherwise."""

import os

from bayesfm.common.xla_workaround import EIGEN_FLAG, single_threaded_cpu_eigen


def test_the_flag_is_added_to_other_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    single_threaded_cpu_eigen()
    assert os.environ["XLA_FLAGS"] == (
        f"--xla_force_host_platform_device_count=2 {EIGEN_FLAG}=false"
    )


def test_a_users_own_choice_is_kept(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", f"{EIGEN_FLAG}=true")
    single_threaded_cpu_eigen()
    assert os.environ["XLA_FLAGS"] == f"{EIGEN_FLAG}=true"


def test_importing_bayesfm_set_it_for_this_process():
    assert f"{EIGEN_FLAG}=false" in os.environ["XLA_FLAGS"]
