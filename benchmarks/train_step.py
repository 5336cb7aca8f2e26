"""Why the store exists: training steps from cached tokens vs with Swin in the loop, side by side.

Prints, in one run, on the same batch of 14 segments (EEG 32 x 384 + 10 face frames each):

1. step time (forward + backward + AdamW) of the Milmer heads (the paper's default config) on
   cached float16 tokens, vs the step time of the same heads with a timm
   ``swin_tiny_patch4_window7_224`` (random init, trainable, as the paper's code fine-tunes it)
   turning the 10 uint8 crops of each sample into tokens every step; their ratio (target >= 20x).
   On a CPU the 140 crops of a Swin step go through in micro-batches (``--micro-batch`` samples
   at a time, gradients accumulated, one optimizer step): the same arithmetic as one batch of 14,
   without the ~17 GB of activations a single pass would keep;
   Rounds alternate a Swin step with a few cached steps, so load from other processes hits both;
   the ratio of the best times is the headline, the ratio of medians is printed too;
2. epoch time of the heads reading the tokens from a feature store (streamed: whole chunks,
   prefetched by a thread pool) vs from tensors already in memory (target <= 1.25x), for the
   paper's heads and for narrow heads (where reading weighs more), plus the raw streaming read
   rate. The store is written just before, so its chunks sit in the page cache: this measures
   decoding and the loader, not a cold disk;
3. the heads' parameter count, beside the released code's 1.4 B-parameter MIL scorer;
4. on a CPU, the cached step in float32 vs under ``torch.autocast("cpu", dtype=torch.bfloat16)``
   (the tokens stage gains 2.7-3x from it on CPUs with native bf16), for the paper's heads and the
   narrow heads of the demo, rounds alternating.

5. with ``--end-to-end`` (only this): a training step of ``milmer train --finetune-backbone``,
   the trainer's own code (:class:`train.backbone_loop.BackboneLoop`: Swin-tiny from random:0
   behind the tokens stage's normalisation, the paper's heads, one AdamW, micro-batches, the
   backbone under bf16 autocast on CUDA and on a CPU with native bf16), in frames/s over
   ``--batch`` segments x 10 frames, and on CUDA the peak GPU memory the step allocated.

    .venv/bin/python benchmarks/train_step.py [--device auto] [--segments 98] [--cached-steps 3]
                                              [--swin-steps 2] [--micro-batch 2] [--epoch-rounds 3]
    .venv/bin/python benchmarks/train_step.py --end-to-end [--batch 14] [--micro-batch 14]
                                              [--steps 3] [--grad-checkpointing]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import timm
import torch
from torch import nn

from train.config import ModelConfig
from train.data import TOKEN_BYTES, StoreData
from train.models import Milmer, build_model, count_parameters
from train.synthetic import write_planted_store

BATCH = 14
SMALL = {"d_model": 64, "fusion_heads": 4, "balance_heads": 4, "fusion_ff": 128, "n_queries": 8,
         "mil_hidden": 32, "mlp_hidden": 128}
RELEASED_SCORER = (37632 * 37632 + 37632) + (37632 + 1) + (37632 * 10 + 10)
"""Parameters of the released code's top-K scorer: Linear(37632, 37632), Linear(37632, 1) and
Linear(37632, 10) (``topk_value_proj``, ``topk_weight_proj``, ``topk_dimension_recover``)."""


class SwinInTheLoop(nn.Module):
    """The paper's training setup: crops -> Swin-tiny (trainable) -> tokens -> the heads."""

    def __init__(self, heads: Milmer) -> None:
        super().__init__()
        self.backbone = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0)
        self.heads = heads
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255)

    def forward(self, eeg: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
        b, f = crops.shape[:2]
        x = crops.flatten(0, 1).permute(0, 3, 1, 2).float()
        tokens = self.backbone.forward_features((x - self.mean) / self.std)  # (B*F, 7, 7, 768)
        return self.heads(eeg, tokens.reshape(b, f, 49, 768))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device: torch.device):  # noqa: ANN202
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def heads_step(model: nn.Module, opt: torch.optim.Optimizer, eeg: torch.Tensor, tokens: torch.Tensor,
               labels: torch.Tensor, autocast) -> None:  # noqa: ANN001
    """Forward (under ``autocast``), cross-entropy, backward and one AdamW step of the heads."""
    with autocast:
        logits = model(eeg, tokens).float()
    loss = nn.functional.cross_entropy(logits, labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class StepBench:
    """One training step of the heads on cached tokens, or of Swin + heads on crops; both models
    are built once so rounds can alternate between them."""

    def __init__(self, device: torch.device, micro: int) -> None:
        self.device, self.micro = device, micro
        torch.manual_seed(0)
        self.cached = build_model(ModelConfig(), num_classes=4).to(device).train()
        self.cached_opt = torch.optim.AdamW(self.cached.parameters(), lr=1e-4)
        torch.manual_seed(0)
        self.swin = SwinInTheLoop(build_model(ModelConfig(), num_classes=4)).to(device).train()
        self.swin_opt = torch.optim.AdamW(self.swin.parameters(), lr=1e-4)

    def cached_step(self, eeg, tokens, labels) -> float:  # noqa: ANN001
        d = self.device
        _sync(d)
        t0 = time.perf_counter()
        heads_step(self.cached, self.cached_opt, eeg.to(d), tokens.to(d), labels.to(d), _autocast(d))
        _sync(d)
        return time.perf_counter() - t0

    def swin_step(self, eeg, crops, labels, *, samples: int = BATCH) -> float:  # noqa: ANN001
        d = self.device
        _sync(d)
        t0 = time.perf_counter()
        self.swin_opt.zero_grad(set_to_none=True)
        for start in range(0, samples, self.micro):
            part = slice(start, min(start + self.micro, samples))
            with _autocast(d):
                logits = self.swin(eeg[part].to(d), crops[part].to(d)).float()
            loss = nn.functional.cross_entropy(logits, labels[part].to(d), reduction="sum") / BATCH
            loss.backward()
        self.swin_opt.step()
        _sync(d)
        return time.perf_counter() - t0


def cpu_precision_steps(model_cfg: ModelConfig, eeg: torch.Tensor, tokens: torch.Tensor,
                        labels: torch.Tensor, *, rounds: int, steps: int) -> dict[str, list[float]]:
    """Cached step times on the CPU in float32 and under bf16 autocast, rounds alternating."""
    times: dict[str, list[float]] = {"float32": [], "bf16": []}
    models = {}
    for kind in times:
        torch.manual_seed(0)
        model = build_model(model_cfg, num_classes=4).train()
        models[kind] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    for r in range(rounds + 1):
        for kind, (model, opt) in models.items():
            for _ in range(steps):
                t0 = time.perf_counter()
                heads_step(model, opt, eeg, tokens, labels,
                           torch.autocast("cpu", dtype=torch.bfloat16, enabled=kind == "bf16"))
                if r:  # round 0 warms both up
                    times[kind].append(time.perf_counter() - t0)
    return times


def epoch_seconds(data_memory: StoreData, data_stream: StoreData, model_cfg: ModelConfig,
                  device: torch.device, *, rounds: int) -> tuple[list[float], list[float]]:
    """Epoch times in memory and from the store, rounds alternating (load from other processes
    hits both alike); one model, warmed up by one untimed epoch."""
    torch.manual_seed(0)
    model = build_model(model_cfg, num_classes=4).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = np.arange(len(data_memory))
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds * 2 + 1):
        stream = r % 2 == 1
        data = data_stream if stream else data_memory
        _sync(device)
        t0 = time.perf_counter()
        for batch in data.batches(rows, batch_size=BATCH, shuffle=True, seed=r, stream=stream):
            heads_step(model, opt, batch.eeg.to(device, non_blocking=True),
                       batch.face.to(device, non_blocking=True), batch.labels.to(device), _autocast(device))
        _sync(device)
        if r:
            times[stream].append(time.perf_counter() - t0)
    return times[False], times[True]


def end_to_end(device: torch.device, *, batch: int, micro: int, steps: int, checkpointing: bool) -> None:
    """Frames/s (and peak GPU memory) of the step ``milmer train --finetune-backbone`` takes."""
    from pipeline.weights.loop import load_loop_backbone
    from train.backbone_loop import BackboneLoop
    from train.config import TrainConfig

    config = TrainConfig(finetune_backbone=True, backbone_weights="random:0", batch_size=batch,
                         micro_batch=micro, grad_checkpointing=checkpointing, device=str(device))
    loop = BackboneLoop(config, load_loop_backbone, device=device, token_weights=None,
                        token_fingerprint=None, where="benchmark")
    torch.manual_seed(0)
    model = loop.wrap(build_model(ModelConfig(), num_classes=4))
    opt = loop.optimizer(model)
    heads_autocast = _autocast(device)
    rng = np.random.default_rng(0)
    eeg = torch.from_numpy(rng.normal(0, 10, (batch, 32, 384)).astype(np.float32)).to(device)
    crops = torch.from_numpy(rng.integers(0, 256, (batch, 10, 224, 224, 3), dtype=np.uint8)).to(device)
    labels = torch.from_numpy(rng.integers(0, 4, batch)).to(device)

    def step() -> float:
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        for start in range(0, batch, micro):
            part = slice(start, min(start + micro, batch))
            with heads_autocast:
                logits = model(eeg[part], crops[part]).float()
            loss = nn.functional.cross_entropy(logits, labels[part], reduction="sum") / batch
            loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - t0

    step()  # warm-up (allocator, kernels)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cpu0 = time.process_time()
    times = [step() for _ in range(steps)]
    cpu_seconds = (time.process_time() - cpu0) / steps
    frames = batch * 10
    print(f"\n== end to end: Swin-tiny trained in the loop + the paper's heads, batch {batch} x 10 "
          f"frames, micro-batches of {micro}, grad checkpointing {'on' if checkpointing else 'off'}, "
          f"backbone {loop.precision} ==")
    print(f"  step: best {min(times):.2f} s, median {statistics.median(times):.2f} s over {steps}; "
          f"{frames / statistics.median(times):.2f} frames/s (median), {frames / min(times):.2f} (best); "
          f"{cpu_seconds:.1f} CPU-seconds of this process per step ({frames / cpu_seconds:.2f} frames "
          "per CPU-second: what a shared CPU's load does not change much)")
    if device.type == "cuda":
        print(f"  peak GPU memory allocated by torch: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--segments", type=int, default=98, help="segments in the epoch benchmark")
    parser.add_argument("--cached-steps", type=int, default=3, help="cached steps per round")
    parser.add_argument("--swin-steps", type=int, default=2,
                        help="rounds, one Swin step each (0 skips the Swin-in-the-loop step)")
    parser.add_argument("--micro-batch", type=int, default=0,
                        help="samples per Swin pass (default: 2 on CPU, 14 on CUDA)")
    parser.add_argument("--epoch-rounds", type=int, default=3, help="alternating rounds; best of each")
    parser.add_argument("--end-to-end", action="store_true",
                        help="only the step of milmer train --finetune-backbone (frames/s, GPU memory)")
    parser.add_argument("--batch", type=int, default=BATCH, help="--end-to-end: segments per step")
    parser.add_argument("--steps", type=int, default=3, help="--end-to-end: timed steps")
    parser.add_argument("--grad-checkpointing", action="store_true", help="--end-to-end: timm's")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    micro = args.micro_batch or (BATCH if device.type == "cuda" else 2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}, timm {timm.__version__}")
    if args.end_to_end:
        end_to_end(device, batch=args.batch, micro=args.micro_batch or (args.batch if device.type == "cuda" else 2),
                   steps=args.steps, checkpointing=args.grad_checkpointing)
        return

    # 3. parameters
    heads = build_model(ModelConfig(), num_classes=4)
    print("\n== parameters (trainable) ==")
    for kind in ("fusion", "concat", "eeg", "face"):
        n = count_parameters(build_model(ModelConfig(kind=kind), num_classes=4))
        print(f"  heads {kind:<7} {n / 1e6:8.2f} M")
    print(f"  of which the MIL scorer: {sum(p.numel() for p in heads.mil.scorer.parameters()):,}")
    print(f"  released code's top-K scorer alone: {RELEASED_SCORER / 1e9:.2f} B")
    swin = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=0)
    print(f"  swin-tiny backbone (trained in the loop by the paper's code): "
          f"{count_parameters(swin) / 1e6:.2f} M")
    del swin

    # 1. step time, same batch
    rng = np.random.default_rng(0)
    eeg = torch.from_numpy(rng.normal(0, 10, (BATCH, 32, 384)).astype(np.float32))
    tokens = torch.from_numpy(rng.standard_normal((BATCH, 10, 49, 768), np.float32).astype(np.float16))
    crops = torch.from_numpy(rng.integers(0, 256, (BATCH, 10, 224, 224, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 4, BATCH))
    print(f"\n== training step, batch of {BATCH} segments (10 frames each) ==")
    bench = StepBench(device, micro)
    for _ in range(2):
        bench.cached_step(eeg, tokens, labels)
    if args.swin_steps:
        bench.swin_step(eeg, crops, labels, samples=micro)  # warm-up: one micro-batch
    cached, swin_times = [], []
    for r in range(max(1, args.swin_steps)):  # rounds alternate: load from elsewhere hits both
        cached += [bench.cached_step(eeg, tokens, labels) for _ in range(args.cached_steps)]
        if args.swin_steps:
            swin_times.append(bench.swin_step(eeg, crops, labels))
            print(f"  round {r + 1}: swin step {swin_times[-1]:.1f} s, cached steps "
                  f"{', '.join(f'{t:.3f}' for t in cached[-args.cached_steps:])} s", flush=True)
    print(f"  cached tokens: best {min(cached):.3f} s, median {statistics.median(cached):.3f} s")
    if swin_times:
        print(f"  swin in loop:  best {min(swin_times):.2f} s, median {statistics.median(swin_times):.2f} s "
              f"({BATCH * 10} crops through swin-tiny fwd+bwd, micro-batches of {micro} samples)")
        ratio = min(swin_times) / min(cached)
        print(f"  ratio swin-in-loop / cached (best of each): {ratio:.1f}x; of medians "
              f"{statistics.median(swin_times) / statistics.median(cached):.1f}x  (target >= 20x) "
              f"{'OK' if ratio >= 20 else 'BELOW TARGET'}")
    del bench

    # 4. CPU precision of the cached step
    if device.type == "cpu":
        print(f"\n== cached step on the CPU: float32 vs bf16 autocast (batch of {BATCH}) ==")
        for label, cfg in (("paper heads", ModelConfig()), ("narrow heads (d=64)", ModelConfig(**SMALL))):
            t = cpu_precision_steps(cfg, eeg, tokens, labels, rounds=args.epoch_rounds,
                                    steps=args.cached_steps)
            f32, b16 = statistics.median(t["float32"]), statistics.median(t["bf16"])
            print(f"  {label:<20} float32 {f32:.3f} s | bf16 {b16:.3f} s (medians) | "
                  f"bf16 speed-up {f32 / b16:.2f}x (best of each {min(t['float32']) / min(t['bf16']):.2f}x)",
                  flush=True)

    # 2. epoch from the store vs in memory
    n_seg = args.segments
    trials = max(1, n_seg // 7)
    with tempfile.TemporaryDirectory(prefix="milmer-bench-") as tmp:
        url = str(Path(tmp) / "store.zarr")
        write_planted_store(url, subjects=1, trials=trials, segments_per_trial=7)
        streamed = StoreData.open(url)
        memory = StoreData.open(url)
        t0 = time.perf_counter()
        memory.load()
        load_s = time.perf_counter() - t0
        streamed.load_eeg()
        read_s = float("inf")
        for seed in range(3):
            t0 = time.perf_counter()
            for _ in streamed.batches(np.arange(len(streamed)), batch_size=BATCH, shuffle=True,
                                      seed=seed, stream=True):
                pass
            read_s = min(read_s, time.perf_counter() - t0)
        mb = len(streamed) * TOKEN_BYTES / 2**20
        print(f"\n== epoch over {len(streamed)} segments ({mb:.0f} MiB of tokens) ==")
        print(f"  one-off load into memory: {load_s:.2f} s ({mb / load_s:.0f} MiB/s); streamed "
              f"read alone, shuffled: {read_s:.2f} s ({mb / read_s:.0f} MiB/s)")
        for label, cfg in (("paper heads", ModelConfig()), ("narrow heads (d=64)", ModelConfig(**SMALL))):
            mem, stream = epoch_seconds(memory, streamed, cfg, device, rounds=args.epoch_rounds)
            r = min(stream) / min(mem)
            print(f"  {label:<20} in memory {min(mem):7.2f} s | from store {min(stream):7.2f} s | "
                  f"ratio {r:.2f}x (target <= 1.25x) {'OK' if r <= 1.25 else 'ABOVE TARGET'}")
            print(f"  {'':<20} rounds: memory {', '.join(f'{t:.2f}' for t in mem)}; "
                  f"store {', '.join(f'{t:.2f}' for t in stream)}", flush=True)


if __name__ == "__main__":
    main()
