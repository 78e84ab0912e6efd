#!/usr/bin/env bash
# The shipped foundation model, from scratch: six training stages, each warm-started from the
# one before (docs/model_card.md says what each adds), then installed with its label prior,
# noise model and sigma factors fitted on the validation split. About 7 hours on a 2-core CPU;
# every stage checkpoints, so rerunning this script resumes where it stopped.
#
# Run from the repository root:  bash configs/train/shipped_model.sh
set -euo pipefail
for stage in 1_default 2_continue_default 3_grow_summary 4_continue_grow_summary \
    5_forward_stage 6_emulator_stage; do
    bayesfm train --config "configs/train/${stage}.json" --out "runs/${stage#*_}"
done
python validation/ship_model.py --run runs/emulator_stage
python validation/fit_sigma_scale.py
