#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in synthetic DEAP dataset.
set -euo pipefail
demo_dir=$(realpath -m "${1:-demo}")
milmer=.venv/bin/milmer
export PREFECT_HOME=${PREFECT_HOME:-$demo_dir/prefect-home}
export PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$demo_dir"
started=$SECONDS

echo "== 1/5 writing a synthetic DEAP dataset to $demo_dir/deap (2 subjects x 8 trials x 12 s)"
rm -rf "$demo_dir/deap" "$demo_dir/store.zarr"
"$milmer" synth "$demo_dir/deap" --subjects 2 --trials 8 --seconds 12 --seed 0 \
    --missing-videos s02_trial05

echo
echo "== 2/5 inspecting it as a user would inspect the real DEAP folder"
"$milmer" inspect "$demo_dir/deap"

echo
echo "== 3/5 running the preprocess-deap flow into $demo_dir/store.zarr: ingest, band-pass + ICA,"
echo "   3 s segments, face crops, and Swin tokens."
echo "   NOTICE: the demo uses RANDOMLY INITIALISED Swin weights (--weights random; no model hub is"
echo "   reachable). The store records them as random. Give --weights PATH for real features."
"$milmer" preprocess --deap "$demo_dir/deap" --store "$demo_dir/store.zarr" --weights random
echo "-- and once more: every subject-stage is up to date, so nothing is recomputed"
"$milmer" preprocess --deap "$demo_dir/deap" --store "$demo_dir/store.zarr" --weights random 2>/dev/null \
    | tail -n 1

echo
echo "== 4/5 the store: what it holds, and a full verification"
"$milmer" store info "$demo_dir/store.zarr"
"$milmer" store verify "$demo_dir/store.zarr"
"$milmer" store faces "$demo_dir/store.zarr" --subject 2 --out "$demo_dir/faces_s02.png"

echo
echo "== 5/5 training the Milmer fusion heads from the cached tensors (5 epochs, 2 folds over whole trials)"
echo "   This demo dataset (16 trials) is far too small to learn from, and its tokens come from random"
echo "   weights: expect accuracy near chance. It shows the run, its outputs and their paths."
"$milmer" train --store "$demo_dir/store.zarr" --out "$demo_dir/run" --epochs 5 --folds 2 --no-progress
echo "   metrics: $demo_dir/run/metrics.json; plots: $demo_dir/run/confusion.png, $demo_dir/run/curves.png"

echo
echo "Done in $((SECONDS - started)) s. Synthetic DEAP: $demo_dir/deap (one video, s02_trial05, left out"
echo "on purpose to show how a missing video is reported). Feature store: $demo_dir/store.zarr."
echo "Face crops of s02 (its trial 5 has no video): $demo_dir/faces_s02.png."
