"""The tokens stage's settings, what a run asks (:class:`TokensSettings`) and what the record
keeps (:class:`TokensParams`: the weights by content fingerprint, the device and precision made
concrete on the machine that computes).

Torch is imported only where a question needs it (is there a CUDA device, does it do bf16): on a
machine without a GPU device node, and for the weights' fingerprint, it is not, so naming the
stage's inputs (the plan, an up-to-date run) stays cheap.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from pipeline.errors import TokensError
from pipeline.weights.swin_source import MODEL_NAME, weights_fingerprint

TOKENS_CODE_VERSION = "1"
"""Bump when :func:`tokens_for_subject` computes something different for the same parameters."""

LIBRARIES: tuple[str, ...] = ("torch", "timm", "safetensors", "numpy")
"""Library versions worth recording beside the tokens."""

DEFAULT_BATCH_SIZE = {"cpu": 32, "cuda": 256}
"""Frames per forward pass when ``batch_size`` is not given."""

_FINGERPRINT_RE = re.compile(r"^(sha256:[0-9a-f]{64}|random:\d+)$")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 ``avx512_bf16`` or ``amx_bf16``),
    read from the kernel's CPU flags; ``False`` where they cannot be read (not Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = {word for line in text.splitlines() if line.startswith(("flags", "Features"))
             for word in line.split(":", 1)[-1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


class TokensParams(BaseModel):
    """Settings of the token stage.

    Hashed into the stage fingerprint (``model_dump``): ``model_name``, ``weights_fingerprint``
    (content hash of the weights or ``random:<seed>``, never their path), ``device`` and ``amp``
    (they change the numbers: fp32 or bf16 autocast on CPU, bf16/fp16 on CUDA). ``batch_size`` and
    ``num_threads`` only change speed: they are excluded from ``model_dump`` and so from the
    fingerprint (tokens of a crop do not depend on its batch, within float tolerance).

    ``device="auto"`` and ``amp="auto"`` are resolved by :meth:`resolved` (and by
    :meth:`from_weights`) on the machine that calls it: CUDA when present, bf16 where the GPU
    supports it, fp16 otherwise; on a CPU bf16 where it is native, float32 (``off``) elsewhere.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: Literal["swin_tiny_patch4_window7_224"] = MODEL_NAME
    weights_fingerprint: str
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    batch_size: PositiveInt | None = Field(None, exclude=True)
    """Frames per forward pass; ``None``: 32 on CPU, 256 on CUDA. Rounded down to whole segments
    (at least one) by :func:`tokens_for_subject`."""
    num_threads: PositiveInt | None = Field(None, exclude=True)
    """CPU threads for torch; ``None``: every core this process may use."""

    @field_validator("weights_fingerprint")
    @classmethod
    def _fingerprint_form(cls, value: str) -> str:
        if not _FINGERPRINT_RE.match(value):
            raise ValueError(
                f"{value!r} is not a weights fingerprint ('sha256:<64 hex>' or 'random:<seed>'); "
                "compute it with pipeline.stages.tokens.extract.weights_fingerprint(path_or_random)")
        return value

    @classmethod
    def from_weights(cls, weights: str | Path | None, **settings: Any) -> TokensParams:
        """Params for these weights (path, ``"random"`` or ``"random:<seed>"``), resolved here.

        ``None`` raises :class:`WeightsError` saying how to give weights.
        """
        return cls(weights_fingerprint=weights_fingerprint(weights), **settings).resolved()

    @property
    def random_weights(self) -> bool:
        return self.weights_fingerprint.startswith("random:")

    def resolved(self) -> TokensParams:
        """A copy with ``device`` and ``amp`` made concrete for this machine.

        CUDA: bf16 where the GPU supports it, else fp16. CPU: bf16 autocast where the processor
        computes bf16 natively (:func:`cpu_has_native_bf16`: 2.6x float32's rate measured on an
        AVX512-BF16 EPYC), float32 elsewhere; ``bf16`` asked for explicitly runs on any CPU.
        Raises :class:`TokensError` when CUDA is asked for and not available, or fp16 on a CPU.
        """
        device = self.device
        if device == "auto":
            device = "cuda" if cuda_available() else "cpu"
        elif device == "cuda" and not cuda_available():
            import torch

            raise TokensError(
                f"device 'cuda' asked for, but torch {torch.__version__} sees no CUDA device; "
                "use --device cpu or --device auto")
        amp = self.amp
        if device == "cpu":
            if amp == "fp16":
                raise TokensError("amp 'fp16' is a CUDA autocast; on a CPU use 'bf16' or 'off'")
            if amp == "auto":
                amp = "bf16" if cpu_has_native_bf16() else "off"
        elif amp == "auto":
            import torch

            amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return self.model_copy(update={"device": device, "amp": amp})


def libraries(params: BaseModel) -> tuple[str, ...]:
    return LIBRARIES


GPU_DEVICE_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg", "/dev/kfd")
"""Device nodes a CUDA (or ROCm, or WSL) device shows as; without any of them torch sees none."""


def cuda_available() -> bool:
    """Whether torch sees a CUDA device, without importing torch where no GPU device node
    exists (torch's import costs ~1 s, more than an up-to-date run's whole plan)."""
    if not any(Path(node).exists() for node in GPU_DEVICE_NODES):
        return False
    import torch

    return torch.cuda.is_available()


class TokensSettings(BaseModel):
    """What a run asks of the tokens stage (``PreprocessConfig.tokens``); the row's ``prepare``
    makes it the recorded :class:`TokensParams` on the machine that computes (``auto`` resolved
    there, the weights hashed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: str | None = Field(
        None, description="Swin weights: a timm checkpoint file, a Hugging Face Swin folder, or "
        "'random[:SEED]' (random init, recorded as such)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where tokens are computed")
    amp: Literal["auto", "bf16", "fp16", "off"] = Field(
        "auto", description="precision: auto = bf16 on a GPU that has it (else fp16), bf16 on a "
        "CPU that computes it natively (else float32); off = float32")
    batch_size: PositiveInt | None = Field(
        None, description="frames per forward (default: 32 CPU, 256 CUDA)")
