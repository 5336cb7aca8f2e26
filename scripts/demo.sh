#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in synthetic DEAP dataset.
# Stages that exist today: synthetic data, then an inspection of it. Later stages are added here.
set -euo pipefail
demo_dir=${1:-demo}
milmer=.venv/bin/milmer

echo "== 1/2 writing a synthetic DEAP dataset to $demo_dir/deap (2 subjects x 8 trials x 12 s)"
rm -rf "$demo_dir/deap"
"$milmer" synth "$demo_dir/deap" --subjects 2 --trials 8 --seconds 12 --seed 0 \
    --missing-videos s02_trial05

echo
echo "== 2/2 inspecting it as a user would inspect the real DEAP folder"
"$milmer" inspect "$demo_dir/deap"

echo
echo "Done. The dataset is in $demo_dir/deap (DEAP's layout: data_preprocessed_python/,"
echo "metadata_csv/participant_ratings.csv, face_video/). One video (s02_trial05) was left out on"
echo "purpose so the inspection shows how a missing video is reported."
echo "Not yet in the demo: preprocessing into the feature store and training (later issues)."
