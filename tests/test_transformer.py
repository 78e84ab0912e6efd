import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesfm.common.errors import DataError
from bayesfm.model.batching import TaskMix, sample_batch
from bayesfm.model.foundation_model import FoundationModel, build_model, file_sha256
from bayesfm.model.train_config import TrainConfig
from bayesfm.model.train_step import make_optimizer, make_train_step, normalise_stars
from bayesfm.model.transformer import TransformerConfig
from bayesfm.tokens.grid import XPBinning
from bayesfm.tokens.specs import default_token_specs
from bayesfm.tokens.vocabulary import fit_vocabulary

TINY = dict(width=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, mlp_width=32)


@pytest.fixture(
    scope="module",
    params=[(0, 0), (24, 0), (24, 12)],
    ids=["attention_only", "pooled_summary", "summary_and_request_head"],
)
def setup(example_stars, request):
    tokens = example_stars.tokens
    vocabulary = fit_vocabulary(tokens, default_token_specs(), XPBinning())
    stars = normalise_stars(tokens, vocabulary)
    summary_width, head_width = request.param
    config = TransformerConfig(
        n_tokens=len(vocabulary), **TINY, summary_width=summary_width, head_width=head_width
    )
    graphdef, params = build_model(config, seed=1)
    return vocabulary, stars, config, graphdef, params


def _batch(vocabulary, stars, seed=0):
    groups = np.array([s.group for s in vocabulary.specs])
    labels = np.isin(groups, ["label", "extinction"])
    observables = ~labels
    rng = np.random.default_rng(seed)
    return sample_batch(
        rng, stars.values, stars.errors, stars.present, labels, observables, TaskMix()
    )


def _apply(graphdef, params, ci, cv, ce, cm, ri):
    from flax import nnx

    return nnx.merge(graphdef, params)(ci, cv, ce, cm, ri)


def test_two_steps_lower_the_loss_on_a_fixed_batch(setup):
    vocabulary, stars, _, graphdef, params = setup
    batch = _batch(vocabulary, stars)
    optimizer, _ = make_optimizer(TrainConfig(learning_rate=1e-2, warmup_steps=1, max_steps=10))
    step = make_train_step(graphdef, optimizer)
    opt_state = optimizer.init(params)
    losses = []
    for _ in range(3):
        params, opt_state, loss = step(params, opt_state, batch)
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert losses[2] < losses[0]


def test_save_load_gives_identical_outputs(setup, tmp_path):
    vocabulary, stars, config, graphdef, params = setup
    model = FoundationModel(config, vocabulary, graphdef, params, {"note": "test"})
    model.save(tmp_path / "m")
    loaded = FoundationModel.load(tmp_path / "m")
    b = _batch(vocabulary, stars)
    args = (b.context_index, b.context_value, b.context_error, b.context_mask, b.target_index)
    for a, c in zip(
        _apply(graphdef, params, *args), _apply(loaded.graphdef, loaded.params, *args), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
    assert loaded.info == {"note": "test"} and loaded.vocabulary.names == vocabulary.names


def test_corrupt_or_mismatched_weights_are_rejected(setup, tmp_path):
    vocabulary, _, config, graphdef, params = setup
    FoundationModel(config, vocabulary, graphdef, params).save(tmp_path / "m")
    weights = tmp_path / "m.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[:100])
    with pytest.raises(DataError, match="SHA-256"):
        FoundationModel.load(tmp_path / "m")
    flipped = bytearray(intact)
    flipped[-5] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="SHA-256"):
        FoundationModel.load(tmp_path / "m")
    # weights of another config with a matching checksum: the shape check names the weight
    other = TransformerConfig(**{**config.to_dict(), "width": 8, "n_heads": 1})
    g2, p2 = build_model(other)
    FoundationModel(other, vocabulary, g2, p2).save(tmp_path / "small")
    weights.write_bytes((tmp_path / "small.safetensors").read_bytes())
    sidecar = tmp_path / "m.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "weights_sha256": file_sha256(weights)}))
    with pytest.raises(DataError, match="shape"):
        FoundationModel.load(tmp_path / "m")
    with pytest.raises(DataError, match="missing"):
        FoundationModel.load(tmp_path / "absent")


def test_outputs_ignore_context_order_padding_and_masked_values(setup, rng):
    _, _, config, graphdef, params = setup
    c = 6
    ci = jnp.asarray(rng.choice(config.n_tokens, size=(1, c), replace=False))
    cv = jnp.asarray(rng.normal(size=(1, c)), jnp.float32)
    ce = jnp.asarray(rng.uniform(0.01, 0.2, size=(1, c)), jnp.float32)
    cm = jnp.ones((1, c), bool)
    ri = jnp.asarray([[0, 5, 17]])
    base = _apply(graphdef, params, ci, cv, ce, cm, ri)[0]
    perm = rng.permutation(c)
    permuted = _apply(graphdef, params, ci[:, perm], cv[:, perm], ce[:, perm], cm, ri)[0]
    np.testing.assert_allclose(permuted, base, rtol=1e-5, atol=1e-6)
    pad = lambda a, v: jnp.concatenate([a, jnp.full((1, 4), v, a.dtype)], axis=1)  # noqa: E731
    padded = _apply(graphdef, params, pad(ci, 3), pad(cv, 7.0), pad(ce, 0.5), pad(cm, False), ri)[0]
    np.testing.assert_allclose(padded, base, rtol=1e-5, atol=1e-6)
    # a masked token's value (even NaN) and error cannot change any output
    masked = cm.at[0, 2].set(False)
    out1 = _apply(graphdef, params, ci, cv, ce, masked, ri)[0]
    out2 = _apply(
        graphdef, params, ci, cv.at[0, 2].set(jnp.nan), ce.at[0, 2].set(jnp.inf), masked, ri
    )[0]
    np.testing.assert_array_equal(np.asarray(out1), np.asarray(out2))
    assert np.isfinite(np.asarray(out2)).all()
    # a prediction does not depend on what else is requested
    alone = _apply(graphdef, params, ci, cv, ce, cm, ri[:, 1:2])[0]
    np.testing.assert_allclose(alone[0, 0], base[0, 1], rtol=1e-5)


def test_gradients_are_finite(setup):
    _, _, config, graphdef, params = setup
    ci = jnp.arange(5)[None]

    def total(v):
        ones = jnp.ones((1, 5), bool)
        return _apply(graphdef, params, ci, v, jnp.full((1, 5), 0.05), ones, jnp.arange(10)[None])[
            0
        ].sum()

    g = jax.grad(total)(jnp.zeros((1, 5)))
    assert np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0


def test_a_grown_request_head_starts_as_the_identity(setup):
    vocabulary, stars, config, _, _ = setup
    from dataclasses import replace

    from flax import nnx

    config = replace(config, head_width=0)
    graphdef, params = build_model(config, seed=1)
    grown_graphdef, grown_params = build_model(replace(config, head_width=12), seed=1)
    old = nnx.to_pure_dict(params)
    new = nnx.to_pure_dict(grown_params)
    assert set(new) - set(old) == {"head_norm", "head_hidden", "head_project", "head_gate"}
    nnx.replace_by_pure_dict(grown_params, {**new, **old})
    b = _batch(vocabulary, stars)
    args = (b.context_index, b.context_value, b.context_error, b.context_mask, b.target_index)
    for before, after in zip(
        _apply(graphdef, params, *args), _apply(grown_graphdef, grown_params, *args), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def test_a_shut_request_head_is_dropped_without_changing_outputs(setup):
    vocabulary, stars, config, _, _ = setup
    from dataclasses import replace

    config = replace(config, head_width=12)
    model = FoundationModel(config, vocabulary, *build_model(config))  # gate at its initial zero
    stripped = model.without_request_head()
    assert stripped.config.head_width == 0 and stripped.n_parameters < model.n_parameters
    b = _batch(vocabulary, stars)
    args = (b.context_index, b.context_value, b.context_error, b.context_mask, b.target_index)
    for a, c in zip(model.module()(*args), stripped.module()(*args), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
