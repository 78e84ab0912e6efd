import numpy as np

from bayesfm.model.batching import TaskMix, sample_batch

SPECTRUM_ONLY = TaskMix(labels_to_rest=0.0, observables_to_labels=1.0, random=0.0)


def _stars(rng, n=40, t=12):
    labels = np.zeros(t, bool)
    labels[-4:] = True
    present = rng.random((n, t)) < 0.9
    return rng.normal(size=(n, t)), np.full((n, t), 0.1), present, labels


def _context_sets(batch):
    return [set(i[m]) for i, m in zip(batch.context_index, batch.context_mask, strict=True)]


def test_full_observables_puts_every_observable_in_the_context():
    values, errors, present, labels = _stars(np.random.default_rng(0))
    args = (values, errors, present, labels, ~labels, SPECTRUM_ONLY)
    full = sample_batch(np.random.default_rng(1), *args, full_observables=1.0)
    for context, have in zip(_context_sets(full), present, strict=True):
        assert set(np.flatnonzero(have & ~labels)) <= context
    partial = sample_batch(np.random.default_rng(1), *args)
    assert any(
        c < set(np.flatnonzero(h & ~labels))
        for c, h in zip(_context_sets(partial), present, strict=True)
    )
