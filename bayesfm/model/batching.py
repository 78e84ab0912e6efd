"""Any-to-any training batches: random context/target subsets of each star's tokens.

Each star in a batch gets one of four tasks, so that the model learns the queries
bayesfm asks of it as well as arbitrary ones:
- ``labels -> rest``: context is a random non-empty subset of the star's labels and
  extinction; targets are all its other tokens (the emulator query inside NUTS);
- ``observables -> labels``: context is a random subset (at least half) of its XP and
  colour tokens, or with probability ``full_observables`` all of them, sometimes with
  extinction; targets are its labels (amortized inference, which mostly sees whole spectra);
- ``random``: a random split of its tokens into context and targets;
- ``emulator``: exactly the emulator's query: context is all of the emulator's inputs
  (the four labels and extinction), each at the fixed normalised error the emulator
  gives it (``EmulatorQuery``); targets are the star's observables. A star lacking an
  input gets ``labels -> rest`` instead, unless it lacks only its abundances and the query
  has donors for them (``bayesfm.model.abundance_donors``).
Context and targets never overlap; targets are capped per star. Arrays are padded to a few fixed lengths so that a
jitted step compiles only a handful of shapes.
"""

from typing import NamedTuple

import numpy as np

from bayesfm.model.abundance_donors import AbundanceDonors
from bayesfm.tokens.labels import LABEL_INPUTS

__all__ = ["Batch", "TaskMix", "EmulatorQuery", "emulator_context_errors", "sample_batch", "pack"]

_PAD_MULTIPLE = 24


class Batch(NamedTuple):
    """A padded training batch (normalised units); all arrays [B, C] or [B, K]."""

    context_index: np.ndarray
    context_value: np.ndarray
    context_error: np.ndarray
    context_mask: np.ndarray
    target_index: np.ndarray
    target_value: np.ndarray
    target_error: np.ndarray
    target_mask: np.ndarray


class TaskMix(NamedTuple):
    """Probabilities of the four tasks (they must add up to one)."""

    labels_to_rest: float = 0.3
    observables_to_labels: float = 0.3
    random: float = 0.4
    emulator: float = 0.0


class EmulatorQuery(NamedTuple):
    """The context of the emulator task, over the vocabulary's T tokens.

    Attributes:
        inputs: Boolean [T], True for the emulator's inputs.
        errors: Normalised 1-sigma error [T] each input is given (others unused).
        label_index: The tokens of ``LABEL_INPUTS`` [5].
        donors: Normalised stand-in abundances for stars without them (None: no stand-ins).
    """

    inputs: np.ndarray
    errors: np.ndarray
    label_index: np.ndarray
    donors: AbundanceDonors | None = None

    @classmethod
    def build(cls, vocabulary, context_errors: dict, donors=None) -> "EmulatorQuery":
        """From a vocabulary, {input name: normalised error} and physical ``donors``."""
        inputs = np.zeros(len(vocabulary), bool)
        errors = np.ones(len(vocabulary), np.float32)
        index = vocabulary.index(list(context_errors))
        inputs[index] = True
        errors[index] = list(context_errors.values())
        if donors is not None:
            donors = donors.normalised(vocabulary.scaling(["fe_h", "alpha_m"]))
        return cls(inputs, errors, np.asarray(vocabulary.index(LABEL_INPUTS)), donors)

    def with_stand_ins(self, rng, rows, values, present):
        """``values`` and ``present`` [B, T] with a donor's abundances for those of ``rows``
        [B] (bool) that lack only them; unchanged (no random numbers drawn) without donors."""
        if self.donors is None:
            return values, present
        index = self.label_index
        labels = np.where(present[:, index], values[:, index], np.nan)
        filled = self.donors.fill(rng, labels, rows)
        values, present = values.copy(), present.copy()
        values[:, index] = np.where(np.isfinite(filled), filled, values[:, index])
        present[:, index] = np.isfinite(filled)
        return values, present


def emulator_context_errors(stars, vocabulary) -> dict:
    """The normalised error the emulator task gives each latent input: its median over the
    training stars (normalised: ``NormalisedStars``), a context the error embedding has seen
    many times."""
    index = vocabulary.index(LABEL_INPUTS)
    return {
        name: float(np.median(stars.errors[stars.present[:, i], i]))
        for name, i in zip(LABEL_INPUTS, index, strict=True)
    }


def sample_batch(
    rng,
    values,
    errors,
    present,
    label_tokens,
    observable_tokens,
    mix=TaskMix(),
    max_targets=24,
    full_observables=0.0,
    emulator_query: EmulatorQuery | None = None,
):
    """Draw context/target masks for B stars and pack them.

    Args:
        rng: numpy Generator.
        values, errors: Normalised token values and errors [B, T] (anything where absent).
        present: Which tokens each star has [B, T] (bool).
        label_tokens: Boolean [T], True for labels and extinction.
        observable_tokens: Boolean [T], True for XP flux and colour tokens.
        mix: Task probabilities.
        max_targets: At most this many targets per star (a random subset), which bounds
            the decoder's cost per step.
        full_observables: Probability that an ``observables -> labels`` star sees all of
            its observables (0 draws no extra random numbers, so older runs replay exactly).
        emulator_query: The emulator task's context; needed when ``mix.emulator`` > 0.

    Returns:
        A Batch.
    """
    b, t = present.shape
    task = rng.choice(4, size=b, p=np.asarray(mix))
    if emulator_query is None and (task == 3).any():
        raise ValueError("the emulator task needs an emulator_query")
    if emulator_query is not None:
        inputs = emulator_query.inputs
        values, present = emulator_query.with_stand_ins(rng, task == 3, values, present)
        complete = (present & inputs).sum(axis=1) == inputs.sum()
        task = np.where((task == 3) & ~complete, 0, task)
    u = rng.random((b, t))
    context, target = _task_masks(
        rng, task, u, present, label_tokens, observable_tokens, full_observables
    )
    emu = task == 3
    if emu.any():
        context[emu] = inputs
        target[emu] = (present & observable_tokens)[emu]
        errors = np.where(emu[:, None] & inputs, emulator_query.errors, errors)
    # every star needs at least one context and one target token
    _ensure_one(context, target, present, u)
    if t > max_targets:
        rank_key = np.where(target, rng.random((b, t)), 2.0)
        target &= rank_key <= np.sort(rank_key, axis=1)[:, max_targets - 1 : max_targets]
    return pack(values, errors, context, target)


def _task_masks(rng, task, u, present, label_tokens, observable_tokens, full_observables):
    """Context and target masks [B, T] of the random, labels -> rest and observables ->
    labels tasks (the emulator task's are set by the caller)."""
    b = len(task)
    # random: context is a random fraction of the present tokens
    fraction = rng.uniform(0.05, 0.95, size=(b, 1))
    context = present & (u < fraction)
    target = present & ~context
    # labels -> rest
    keep = rng.uniform(0.3, 1.0, size=(b, 1))
    lab_ctx = present & label_tokens & (u < keep)
    lab = task == 0
    context[lab], target[lab] = lab_ctx[lab], (present & ~lab_ctx)[lab]
    # observables -> labels
    kept_fraction = rng.uniform(0.5, 1.0, size=(b, 1))
    if full_observables > 0:
        kept_fraction[rng.random((b, 1)) < full_observables] = 1.0
    obs_ctx = present & observable_tokens & (u < kept_fraction)
    with_extinction = rng.random((b, 1)) < 0.3
    obs_ctx |= present & label_tokens & with_extinction & _is_last(label_tokens)
    obs = task == 1
    context[obs] = obs_ctx[obs]
    target[obs] = (present & label_tokens & ~obs_ctx)[obs]
    return context, target


def _is_last(label_tokens):
    """Boolean [T]: the last label token (extinction comes last in the vocabulary)."""
    last = np.zeros_like(label_tokens)
    last[np.nonzero(label_tokens)[0][-1]] = True
    return last


def _ensure_one(context, target, present, u):
    for row in np.nonzero(~context.any(axis=1) | ~target.any(axis=1))[0]:
        have = np.nonzero(present[row])[0]
        order = have[np.argsort(u[row, have])]
        context[row], target[row] = False, False
        if len(order) >= 2:
            context[row, order[:1]] = True
            target[row, order[1:]] = True


def pack(values, errors, context, target) -> Batch:
    """Gather the True entries of ``context``/``target`` [B, T] into padded index arrays."""
    ci, cm = _gather(context)
    ti, tm = _gather(target)
    rows = np.arange(len(values))[:, None]
    return Batch(
        context_index=ci,
        context_value=np.where(cm, values[rows, ci], 0.0).astype(np.float32),
        context_error=np.where(cm, errors[rows, ci], 1.0).astype(np.float32),
        context_mask=cm,
        target_index=ti,
        target_value=np.where(tm, values[rows, ti], 0.0).astype(np.float32),
        target_error=np.where(tm, errors[rows, ti], 1.0).astype(np.float32),
        target_mask=tm,
    )


def _gather(mask):
    count = mask.sum(axis=1)
    width = max(_PAD_MULTIPLE, int(np.ceil(count.max() / _PAD_MULTIPLE) * _PAD_MULTIPLE))
    order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
    if order.shape[1] < width:
        order = np.pad(order, ((0, 0), (0, width - order.shape[1])))
    valid = np.arange(width)[None, :] < count[:, None]
    return np.where(valid, order, 0).astype(np.int32), valid
