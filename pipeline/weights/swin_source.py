"""Where the Swin-tiny weights of the tokens stage are, and their content fingerprint, without
torch: naming the tokens stage's inputs (the plan, an up-to-date run) reads files and hashes them,
it never loads a tensor. Loading, the key filters and the checks are in :mod:`pipeline.weights.swin`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import WeightsError
from store_schema.contract.fingerprint import digest, file_fingerprint

MODEL_NAME = "swin_tiny_patch4_window7_224"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

HOW_TO_GIVE_WEIGHTS = (
    "give the Swin-tiny weights with `--weights PATH` (a timm .pth/.safetensors checkpoint, or a "
    "Hugging Face Swin folder with config.json + model.safetensors or pytorch_model.bin), "
    "`--weights hf-hub:ORG/NAME[@REVISION]` (from the Hugging Face cache), `--weights imagenet` or "
    "`--weights face-emotion`, or `--weights random` for randomly initialised weights (tokens are "
    "then marked as random)")

HF_HUB_PREFIX = "hf-hub:"

MODEL_CARD = "model_card.json"
"""What ``milmer finetune`` writes beside its weights: their base, data, recipe and scores."""

IMAGENET_REPOS = ("timm/swin_tiny_patch4_window7_224.ms_in1k", "microsoft/swin-tiny-patch4-window7-224")
"""Hub repos of the ImageNet-1k Swin-tiny (timm's copy and Microsoft's, the paper's non-FT arm)."""

ALIASES: dict[str, str] = {
    "imagenet": "hf-hub:timm/swin_tiny_patch4_window7_224.ms_in1k",
    "face-emotion": "hf-hub:MahmoudWSegni/swin-tiny-patch4-window7-224-finetuned-face-emotion-v12",
}
"""``imagenet``: timm's ImageNet-1k Swin-tiny (the paper's non-FT arm loads Microsoft's copy of
the same weights). ``face-emotion``: the checkpoint the Milmer code loads (HF Trainer, 3 epochs on
an undisclosed image folder per its card: opaque, so the record pins the revision and sha256)."""

HUB_FILES = ("config.json", "preprocessor_config.json", "model.safetensors",
             "model.safetensors.index.json", "model-*.safetensors", "pytorch_model.bin")
"""What a download fetches of a repo: the config and the weights, not the rest of the repo."""

_WEIGHT_FILE_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_HF_INDEX_FILE = "model.safetensors.index.json"

@dataclass(frozen=True)
class WeightsSource:
    """Where the weights come from, as given by the user."""

    kind: Literal["random", "timm_file", "hf_folder", "timm_folder"]
    fingerprint: str
    path: Path | None = None
    seed: int | None = None
    files: tuple[Path, ...] = ()
    """The files whose content the fingerprint hashes (config first, then weights)."""
    file_hashes: tuple[str, ...] = ()
    """``sha256:<hex>`` of each of :attr:`files`, taken once for the fingerprint."""
    spec: str | None = None
    """The weights as the user named them (a path, ``random:3``, ``hf-hub:ORG/NAME@REV``, an alias)."""
    repo: str | None = None
    """The Hugging Face repo they were resolved from (``hf-hub:`` specs and aliases)."""
    revision: str | None = None
    """The commit of that repo's cached snapshot."""

    @property
    def random(self) -> bool:
        return self.kind == "random"

    def provenance(self) -> dict[str, Any]:
        """Where the weights came from, for records and model cards (JSON): the spec, repo,
        revision and file hashes, and the starting point they are (:meth:`origin`)."""
        origin, face_tuned = self.origin()
        card = self.model_card()
        return {"spec": self.spec, "kind": self.kind, "repo": self.repo, "revision": self.revision,
                "path": None if self.path is None else str(self.path), "seed": self.seed,
                "fingerprint": self.fingerprint, "origin": origin, "face_tuned": face_tuned,
                "model_card": None if card is None else {
                    "sha256": file_fingerprint(card[0], content=True),
                    **{k: card[1].get(k) for k in ("base_weights", "data", "classes", "selected_epoch",
                                                   "validation", "test")}},
                "files": [{"name": f.name, "sha256": h} for f, h in zip(self.files, self.file_hashes)]}

    def origin(self) -> tuple[str, bool | None]:
        """Which starting point of the paper's Table 6 these weights are, and whether they were
        tuned on face expressions (its "FT" axis): ``random`` and ``imagenet`` are not,
        ``face-emotion`` and a ``milmer finetune`` output (a folder with its model card) are, any
        other checkpoint is unknown (``None``)."""
        if self.random:
            return "random", False
        if self.repo in IMAGENET_REPOS:
            return "imagenet", False
        if self.repo is not None and self.repo == hub_spec(ALIASES["face-emotion"]).repo:
            return "face-emotion", True
        if self.model_card() is not None:
            return "finetune", True
        return "checkpoint", None

    def model_card(self) -> tuple[Path, dict[str, Any]] | None:
        """The ``model_card.json`` beside folder weights (what ``milmer finetune`` writes)."""
        if self.path is None or not self.path.is_dir() or not (self.path / MODEL_CARD).is_file():
            return None
        return self.path / MODEL_CARD, read_json(self.path / MODEL_CARD)

    def describe(self) -> str:
        return f"random (seed {self.seed})" if self.random else f"{self.kind} {self.path}"


@dataclass(frozen=True)
class Normalisation:
    """``(pixel * scale - mean) / std`` per RGB channel, and where the values come from."""

    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    origin: str

    def as_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "mean": list(self.mean), "std": list(self.std),
                "origin": self.origin}


IMAGENET_NORMALISATION = Normalisation(scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                       origin="ImageNet default")


@dataclass(frozen=True)
class HubSpec:
    """``hf-hub:ORG/NAME[@REVISION]``: a repo of the Hugging Face hub, at a branch, tag or commit
    (``None``: ``main``)."""

    repo: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"{HF_HUB_PREFIX}{self.repo}" + (f"@{self.revision}" if self.revision else "")


def hub_spec(weights: str | Path | None) -> HubSpec | None:
    """The hub repo an alias or an ``hf-hub:`` spec names; ``None`` for anything else."""
    if not isinstance(weights, str):
        return None
    weights = ALIASES.get(weights.strip(), weights.strip())
    if not weights.startswith(HF_HUB_PREFIX):
        return None
    repo, _, revision = weights[len(HF_HUB_PREFIX):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise WeightsError(f"{weights!r}: expected hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    return HubSpec(repo=repo, revision=revision or None)


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder from its variables, read now (the library reads them once,
    when it is imported): ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
    ``XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return xdg / "huggingface" / "hub"


def hub_snapshot(hub: HubSpec, *, download: bool = False) -> Path:
    """The folder of ``hub``'s snapshot in huggingface_hub's own cache (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``). Offline unless ``download``: a repo or
    revision missing from the cache is one line naming it and the command that fetches it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        return Path(snapshot_download(hub.repo, revision=hub.revision, cache_dir=cache,
                                      local_files_only=not download, allow_patterns=list(HUB_FILES)))
    except LocalEntryNotFoundError:
        fetch = f"hf download {hub.repo}" + (f" --revision {hub.revision}" if hub.revision else "")
        raise WeightsError(
            f"{hub}: repo {hub.repo} at revision {hub.revision or 'main'} is not in the Hugging Face "
            f"cache ({cache}); fetch it once with `{fetch}` (or add --download-weights), "
            "then runs read it offline") from None
    except HFValidationError as err:
        raise WeightsError(f"{hub}: {err}") from None
    except Exception as err:  # noqa: BLE001 - network, authorisation, a repo that does not exist
        raise WeightsError(f"{hub}: cannot download ({type(err).__name__}: "
                           f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from None


def fetch_weights(weights: str) -> WeightsSource:
    """Download a hub spec's config and weights into the cache (the only call that goes online),
    then resolve them as :func:`resolve_weights` does offline; other specs are only resolved."""
    hub = hub_spec(weights)
    if hub is not None:
        hub_snapshot(hub, download=True)
    return resolve_weights(weights)


def resolve_weights(weights: str | Path | None) -> WeightsSource:
    """Classify ``weights`` and fingerprint their content; the source remembers the spec as given.

    ``None``/``""`` → :class:`WeightsError` saying how to give weights; ``"random"`` (seed 0) or
    ``"random:<seed>"``; an alias or ``hf-hub:ORG/NAME[@REVISION]``, resolved offline from the
    Hugging Face cache to its snapshot folder (repo and the snapshot's commit recorded);
    otherwise a local file or folder (the literal string ``random`` always means random weights:
    write ``./random`` for a file of that name).
    """
    hub = hub_spec(weights)
    if hub is not None:
        folder = hub_snapshot(hub)
        source = _resolve_local(folder)
        return dataclasses.replace(source, spec=str(weights), repo=hub.repo, revision=folder.name)
    source = _resolve_local(weights)
    return dataclasses.replace(source, spec=None if weights is None else str(weights))


def _resolve_local(weights: str | Path | None) -> WeightsSource:
    if weights is None or (isinstance(weights, str) and not weights.strip()):
        raise WeightsError(f"the token stage needs Swin weights and none were given: {HOW_TO_GIVE_WEIGHTS}")
    if isinstance(weights, str) and (weights == "random" or weights.startswith("random:")):
        seed_text = weights.partition(":")[2] or "0"
        if not seed_text.isdigit():
            raise WeightsError(f"{weights!r}: a random seed must be a non-negative integer, "
                               "e.g. `--weights random:0`")
        seed = int(seed_text)
        return WeightsSource(kind="random", fingerprint=f"random:{seed}", seed=seed)
    path = Path(weights).expanduser()
    if not path.exists():
        raise WeightsError(f"{path}: no such file or folder; {HOW_TO_GIVE_WEIGHTS}")
    if path.is_dir():
        config_path = path / "config.json"
        if not config_path.is_file():
            raise WeightsError(
                f"{path}: a weights folder needs a config.json (Hugging Face or timm layout) "
                f"beside its weight file; {HOW_TO_GIVE_WEIGHTS}")
        config = read_json(config_path)
        kind: Literal["hf_folder", "timm_folder"] = "timm_folder" if "architecture" in config else "hf_folder"
        files = [config_path, *folder_weight_files(path)]
        if kind == "hf_folder" and (path / "preprocessor_config.json").is_file():
            files.insert(1, path / "preprocessor_config.json")  # it sets the normalisation
        return _content_source(kind, path, files)
    if path.suffix.lower() not in _WEIGHT_FILE_SUFFIXES:
        raise WeightsError(f"{path}: not a checkpoint file (expected one of "
                           f"{', '.join(_WEIGHT_FILE_SUFFIXES)}); {HOW_TO_GIVE_WEIGHTS}")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: empty file (0 bytes), not a checkpoint; {HOW_TO_GIVE_WEIGHTS}")
    return _content_source("timm_file", path, [path])


def weights_fingerprint(weights: str | Path | None) -> str:
    """``sha256:<hex>`` of the weights' content (a folder: config, preprocessor config, weight
    files, with their names), or ``random:<seed>``. Independent of path and mtime."""
    return resolve_weights(weights).fingerprint


def _content_source(kind: Literal["timm_file", "hf_folder", "timm_folder"], path: Path,
                    files: list[Path]) -> WeightsSource:
    """The source of local weights: each file hashed once; the fingerprint is a single file's own
    sha256 (comparable with `sha256sum`) or, for a folder, the digest of names and hashes."""
    hashes = [file_fingerprint(p, content=True) for p in files]
    root = path if path.is_dir() else path.parent
    fingerprint = hashes[0] if len(hashes) == 1 else "sha256:" + digest(
        [[p.relative_to(root).as_posix(), h] for p, h in zip(files, hashes)])
    return WeightsSource(kind=kind, fingerprint=fingerprint, path=path, files=tuple(files),
                         file_hashes=tuple(hashes))


def folder_weight_files(folder: Path) -> list[Path]:
    index = folder / _HF_INDEX_FILE
    if index.is_file():
        shards = sorted(set(read_json(index).get("weight_map", {}).values()))
        missing = [s for s in shards if not (folder / s).is_file()]
        if not shards or missing:
            raise WeightsError(f"{index}: shards missing from the folder: {missing or 'none listed'}")
        return [folder / s for s in shards]
    for name in _HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return [folder / name]
    raise WeightsError(f"{folder}: no weight file (expected {' or '.join(_HF_WEIGHT_FILES)} "
                       f"beside config.json); {HOW_TO_GIVE_WEIGHTS}")


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise WeightsError(f"{path}: unreadable JSON ({err})") from None
    if not isinstance(value, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    return value
