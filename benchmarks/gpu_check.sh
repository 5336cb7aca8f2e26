#!/usr/bin/env bash
# The GPU path end to end, in <= 7 minutes on one CUDA machine with the project installed (.venv,
# or `make setup` first where a package registry is reachable). Prints:
#   - the tokens stage on CUDA (bf16 autocast, pinned host memory, the prefetching reader) in
#     frames/s beside a bare forward of the same backbone (benchmarks/tokens.py --device cuda);
#   - the training step from cached tokens vs Swin in the loop, on CUDA (benchmarks/train_step.py);
#   - a real pipeline run: synthetic DEAP -> every stage (random Swin weights) -> milmer train on
#     CUDA for 2 epochs, with its stage seconds;
#   - the end-to-end step of `milmer train --finetune-backbone` (Swin-tiny trained in the loop with
#     the paper's heads, the trainer's own code) at batch 14 x 10 frames in one pass: frames/s and
#     the peak GPU memory torch allocated, then the same with gradient checkpointing; and a
#     1-epoch `milmer train --finetune-backbone` on the pipeline's store (crops streamed);
#   - `milmer finetune` (issue 29): one epoch of a 2,000-image synthetic expression folder on CUDA,
#     training images/s and the peak memory torch allocated;
#   - the peak GPU memory seen during all of it (nvidia-smi, sampled every 200 ms).
# Without a CUDA device it refuses (exit 3) before doing anything: none of these figures means
# anything on a CPU (the CPU figure is `benchmarks/train_step.py --end-to-end --device cpu`).
# Usage: bash benchmarks/gpu_check.sh [WORK_DIR]   (figures also land in WORK_DIR/gpu_check.log)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
LOG="$WORK/gpu_check.log"
PY=.venv/bin/python
MILMER=.venv/bin/milmer
export PYTHONUNBUFFERED=1 PREFECT_HOME="$WORK/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
exec > >(tee "$LOG") 2>&1

"$PY" -c 'import torch, sys; ok = torch.cuda.is_available(); print("torch", torch.__version__, "CUDA", ok, torch.cuda.get_device_name(0) if ok else ""); sys.exit(0 if ok else 3)' \
    || { echo "gpu_check: torch sees no CUDA device here; nothing to check"; exit 3; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$WORK/gpu_memory.csv" &
SAMPLER=$!
trap 'kill $SAMPLER 2>/dev/null || true' EXIT

echo; echo "== 1. tokens stage vs bare forward on CUDA"
timeout 120 "$PY" benchmarks/tokens.py --device cuda --segments 300 --rounds 2

echo; echo "== 2. training step: cached tokens vs Swin in the loop, on CUDA"
timeout 120 "$PY" benchmarks/train_step.py --device cuda --segments 98 --epoch-rounds 2

echo; echo "== 3. pipeline -> store -> training on CUDA (synthetic DEAP, random Swin weights)"
started=$(date +%s)
"$MILMER" synth "$WORK/deap" --subjects 2 --trials 8 --seconds 12 --fps 10 > /dev/null
timeout 150 "$MILMER" preprocess --deap "$WORK/deap" --store "$WORK/store.zarr" --weights random \
    --device cuda
"$MILMER" store info "$WORK/store.zarr" | tail -n 5
timeout 90 "$MILMER" train --store "$WORK/store.zarr" --out "$WORK/run" --device cuda --epochs 2 \
    --folds 2
echo "pipeline + training: $(( $(date +%s) - started )) s"

echo; echo "== 4. end to end: Swin-tiny trained in the loop + heads (milmer train --finetune-backbone)"
timeout 150 "$PY" benchmarks/train_step.py --device cuda --end-to-end --batch 14 --micro-batch 14 --steps 3
timeout 150 "$PY" benchmarks/train_step.py --device cuda --end-to-end --batch 14 --micro-batch 14 --steps 3 \
    --grad-checkpointing
started=$(date +%s)
timeout 150 "$MILMER" train --store "$WORK/store.zarr" --out "$WORK/run-loop" --device cuda --epochs 1 \
    --folds 2 --finetune-backbone --no-progress
ls "$WORK/run-loop/backbone"
echo "training with Swin in the loop, 1 epoch, 2 folds: $(( $(date +%s) - started )) s"

echo; echo "== 5. milmer finetune: one epoch of a 2,000-image face-expression folder on CUDA"
"$PY" scripts/expression_folder.py "$WORK/expressions" --train-per-class 500 --val-per-class 25 \
    --test-per-class 25
started=$(date +%s)
timeout 240 "$MILMER" finetune --data "$WORK/expressions" --out "$WORK/finetuned" --weights random:0 \
    --epochs 1 --device cuda --no-progress
"$PY" -c 'import json, sys; row = json.load(open(sys.argv[1]))["history"][0]; print("finetune, 1 epoch of 2,000 images: %s training images/s, peak GPU memory torch allocated %s MiB, epoch with validation %s s" % (row["train_images_per_second"], row["peak_gpu_memory_mib"], row["seconds"]))' \
    "$WORK/finetuned/model_card.json"
echo "finetune, folder read + 1 epoch + test: $(( $(date +%s) - started )) s"

kill $SAMPLER 2>/dev/null || true
echo; echo "== peak GPU memory used (nvidia-smi, all processes): $(sort -n "$WORK/gpu_memory.csv" | tail -n 1) MiB"
