"""Traced programs kept on disk: read back instead of traced, keyed by what shapes them."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesfm.common import stored_programs
from bayesfm.common.stored_programs import keep_programs_in, stored_jit


class _Pair(NamedTuple):
    scale: np.ndarray
    shift: np.ndarray


@pytest.fixture
def store(tmp_path):
    keep_programs_in(tmp_path)
    yield tmp_path
    keep_programs_in(None)


def _counting(traces, power=2.0):
    """A program over a custom pytree that records each time it is traced."""

    def program(x, pair):
        traces.append(1)
        return jnp.sin(x) ** power * pair.scale + pair.shift, jnp.sum(x)

    return program


def _arguments():
    x = np.linspace(0.0, 1.0, 6, dtype=np.float32).reshape(2, 3)
    return x, _Pair(np.float32([1.0, 2.0, 3.0]), np.float32([0.5, 0.0, -0.5]))


def test_a_new_process_reads_the_stored_program_instead_of_tracing_it(store):
    traces = []
    expected = jax.jit(_counting([]))(*_arguments())
    first = stored_jit(_counting(traces), "demo", "settings")(*_arguments())
    assert len(traces) == 1 and len(list(store.glob("demo-*.jaxexport"))) == 1
    # a new StoredProgram stands for a new process: nothing is traced again
    again = stored_jit(_counting(traces), "demo", "settings")(*_arguments())
    assert len(traces) == 1
    for a, b, c in zip(expected, first, again, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))


def test_other_settings_or_argument_shapes_are_traced_afresh(store):
    traces = []
    stored_jit(_counting(traces), "demo", "settings")(*_arguments())
    out = stored_jit(_counting(traces, 3.0), "demo", "other settings")(*_arguments())
    x, pair = _arguments()
    np.testing.assert_allclose(np.asarray(out[0]), np.sin(x) ** 3 * pair.scale + pair.shift, 1e-6)
    stored_jit(_counting(traces), "demo", "settings")(np.zeros((4, 3), np.float32), pair)
    assert len(traces) == 3 and len(list(store.glob("demo-*.jaxexport"))) == 3


def test_a_damaged_program_file_is_traced_and_written_again(store):
    traces = []
    stored_jit(_counting(traces), "demo", "settings")(*_arguments())
    (path,) = store.glob("demo-*.jaxexport")
    path.write_bytes(path.read_bytes()[:100])
    out = stored_jit(_counting(traces), "demo", "settings")(*_arguments())
    assert len(traces) == 2
    np.testing.assert_array_equal(np.asarray(out[1]), np.sum(_arguments()[0]))
    assert stored_programs._read(path) is not None  # rewritten whole


def test_a_program_jax_cannot_export_runs_traced_as_plain_jit(store, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("a custom call without a compatibility guarantee")

    monkeypatch.setattr(stored_programs.export, "export", refuse)
    out = stored_jit(_counting([]), "demo", "settings")(*_arguments())
    np.testing.assert_array_equal(np.asarray(out[1]), np.sum(_arguments()[0]))
    assert not list(store.iterdir())


def test_without_a_store_or_a_fingerprint_or_under_a_transformation_it_is_plain_jit(tmp_path):
    traces = []
    assert isinstance(stored_jit(_counting(traces), "demo", None), type(jax.jit(len)))
    program = stored_jit(_counting(traces), "demo", "settings")
    program(*_arguments())  # no store: nothing written anywhere
    keep_programs_in(tmp_path)
    try:
        x, pair = _arguments()
        batched = jax.vmap(lambda row: program(row, pair)[0])(x)  # tracers: not exported
        expected = np.sin(x) ** 2 * pair.scale + pair.shift
        np.testing.assert_allclose(np.asarray(batched), expected, rtol=1e-6)
    finally:
        keep_programs_in(None)
    assert not list(tmp_path.iterdir())


def test_the_shipped_setups_draw_weigher_is_stored_and_weighs_as_before(store, example_stars):
    from bayesfm.infer.importance import weigh_stars
    from bayesfm.infer.mixture import Mixture
    from bayesfm.infer.setup import StarInference, prepare_stars

    setup = StarInference.default()
    keys = {setup.program_key, setup.proposal_setup.program_key}
    assert None not in keys and len(keys) == 2  # the proposal emulator's programs are its own
    prepared = prepare_stars(setup, example_stars.tokens.take([0]))
    proposal = Mixture(np.zeros((1, 1)), np.zeros((1, 1, 5)), 0.3 * np.eye(5)[None, None])
    key = jax.random.PRNGKey(3)
    stored = weigh_stars(setup, prepared.data, [0], proposal, key, 64, 5.0)
    assert len(list(store.glob("star_weigher-*.jaxexport"))) == 1
    keep_programs_in(None)
    plain = weigh_stars(setup, prepared.data, [0], proposal, key, 64, 5.0)
    for a, b in zip(stored, plain, strict=True):
        np.testing.assert_array_equal(a, b)
