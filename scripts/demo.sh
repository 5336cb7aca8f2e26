#!/usr/bin/env bash
# `make demo`: the main job end to end on the built-in synthetic DEAP dataset, ending with what
# the heads learned on held-out trials, against chance and against a probe of the same data.
set -euo pipefail
demo_dir=$(realpath -m "${1:-demo}")
milmer=.venv/bin/milmer
export PREFECT_HOME=${PREFECT_HOME:-$demo_dir/prefect-home}
export PREFECT_SERVER_ANALYTICS_ENABLED=false
mkdir -p "$demo_dir"
started=$SECONDS
deap=$demo_dir/deap store=$demo_dir/store.zarr
heads=scripts/demo_heads.json  # narrow heads (d_model 128, lr 1e-3): minutes, not hours, on 2 cores
# 20 epochs: with 36 trials training accuracy reaches 1.00 long before (memorised), and the
# epoch is chosen on validation trials anyway
train_flags=(--labels deap4 --epochs 20 --folds 3 --config "$heads" --no-progress)

echo "== 1/7 writing synthetic DEAP (generator v2, 'easy') to $deap: 3 subjects x 12 trials x 15 s"
echo "   (EEG band power and a facial expression carry the ratings; whole-frame colour does not)"
rm -rf "$deap" "$store" "$demo_dir/run" "$demo_dir/eeg-only" "$demo_dir/face-only" "$demo_dir/study" \
    "$demo_dir/reports"
"$milmer" synth "$deap" --subjects 3 --trials 12 --seconds 15 --fps 10 --seed 0 --difficulty easy \
    --missing-videos s02_trial05

echo
echo "== 2/7 inspecting it as a user would inspect the real DEAP folder"
"$milmer" inspect "$deap"

echo
echo "== 3/7 what a run would compute, and why (--plan starts nothing)"
"$milmer" preprocess --deap "$deap" --store "$store" --weights random --plan | tail -n 1
echo "   running the preprocess-deap flow: ingest, band-pass + ICA, 3 s segments, face crops, Swin tokens."
echo "   NOTICE: RANDOMLY INITIALISED Swin weights (--weights random; no model hub is reachable),"
echo "   recorded as random in the store. Give --weights PATH for real features."
"$milmer" preprocess --deap "$deap" --store "$store" --weights random
echo "-- the plan now, and a second run: everything up to date, nothing recomputed, Prefect not started"
"$milmer" preprocess --deap "$deap" --store "$store" --weights random --plan | tail -n 1
"$milmer" preprocess --deap "$deap" --store "$store" --weights random 2>/dev/null | tail -n 1

echo
echo "== 4/7 the store: what it holds, a full verification, and what ICA and the face stage did"
"$milmer" store info "$store"
"$milmer" store verify "$store"
"$milmer" store faces "$store" --subject 2 --out "$demo_dir/faces_s02.png"
"$milmer" report "$store" --subjects 2 --out "$demo_dir/reports"

echo
echo "== 5/7 training the fusion heads (spectral EEG tokenizer) on cached tensors: DEAP-4, whole"
echo "   trials held out (3 folds), epoch chosen on validation trials, test fold touched once"
"$milmer" train --store "$store" --out "$demo_dir/run" "${train_flags[@]}"

echo
echo "== 6/7 the same heads, folds and epochs with one modality: EEG only, then face only"
"$milmer" train --store "$store" --out "$demo_dir/eeg-only" --model eeg "${train_flags[@]}"
"$milmer" train --store "$store" --out "$demo_dir/face-only" --model face "${train_flags[@]}"

echo
echo "== 7/7 what was learned"
.venv/bin/python scripts/demo_summary.py "$demo_dir/run" "$demo_dir/eeg-only" "$demo_dir/face-only" \
    --store "$store"
echo
echo "Pictures: $demo_dir/faces_s02.png (face crops; s02 trial 5 has no video, left out on purpose),"
echo "  $demo_dir/run/confusion.png, $demo_dir/run/curves.png (train and validation);"
echo "  QC report: $demo_dir/reports/index.html. Metrics: $demo_dir/{run,eeg-only,face-only}/metrics.json."
echo "  The EEG tokenizers side by side: milmer ablate tokenizers --store $store --out $demo_dir/study \\"
echo "    --labels deap4 --folds 3 --config $heads"
echo "Done in $((SECONDS - started)) s."
