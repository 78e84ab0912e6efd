"""The validation report's sections, in the order the report reads.

Each section is a module with:
    NAME: its key in results.json (and the name ``--only`` takes);
    USES: the sections whose arrays its computation reads (computed first);
    compute(ctx, results) -> dict: its results (``arrays`` feed figures and later sections,
        and are not saved);
    markdown(results) -> list[str]: its part of REPORT.md;
    FIGURES (optional): file name -> draw(results) -> matplotlib figure;
    first_computed(section) (optional): the seconds its resumable runs took when first
        computed, by step.
"""

from sections import (
    extinction_curve,
    heldout,
    hidden_spectrum,
    loci,
    methods,
    misfit,
    reanchored,
    sbc,
    sbc_emulator_labels,
    sbc_noise,
    sbc_truth_sigma,
)

REGISTRY = (
    heldout,
    misfit,
    methods,
    sbc,
    sbc_noise,
    sbc_truth_sigma,
    sbc_emulator_labels,
    reanchored,
    extinction_curve,
    hidden_spectrum,
    loci,
)
NAMES = tuple(section.NAME for section in REGISTRY)
BY_NAME = {section.NAME: section for section in REGISTRY}


def compute_order(names) -> list:
    """The sections ``names`` and those they use, each after the sections it uses."""
    order = []

    def visit(name):
        for used in BY_NAME[name].USES:
            visit(used)
        if BY_NAME[name] not in order:
            order.append(BY_NAME[name])

    for name in names:
        visit(name)
    return order
