"""The training data: every usable subject of a feature store, its labels, its folds, its batches.

Reads only through :mod:`store_schema`. A subject is usable when its ``segment`` stage is
committed and, for a model that looks at faces, its ``tokens`` stage too, with as many segments,
made from this segment stage (when the records name their inputs). Subjects that are not usable
are skipped and listed in :attr:`StoreData.skipped`, with the reason. Token sets made from
different Swin weights are never mixed: :meth:`StoreData.open` refuses the store (name a subset
with ``subjects``). With ``face_from="crops"`` (Swin trained in the loop) the face input is
the faces stage's 224x224 crops instead, always streamed per batch: a subject needs a committed
faces stage, its tokens are optional (their weights, when one set, name the default starting
point). For a face model, segments whose face video was missing (``has_video`` False:
black crops) are dropped, and subjects without any video skipped; they are listed in
:attr:`StoreData.faceless` (``keep_faceless`` keeps them, contaminating the face figures). A
model without faces keeps every segment.

Protocols (:meth:`StoreData.splits`), all deterministic by seed:

* ``trial`` — per subject, the trials are dealt to k folds (shuffled, stratified by label); fold
  f tests every subject's fold-f trials and trains on all the other trials of all subjects. No
  segment of a test trial is ever in training.
* ``segment`` — the same over single segments (the paper's random split): neighbouring 3 s
  windows of one trial land on both sides, so the result is optimistic; marked ``leaky``.
* ``loso`` — fold f tests subject f and trains on the others.

Loading: when the selected segments fit (``in_memory="auto"``: in ``memory_fraction`` of the
available memory) they are read once, whole arrays per subject (contiguous reads), and batches
index tensors in memory. Otherwise tokens are streamed: each batch's segments are read as whole
chunks (the store keeps one segment per token chunk), all chunks of a batch at once on Zarr's
async loop (~2x the rate of one read per thread), ``prefetch_batches`` batches ahead of the
model, by a background thread (default) or by ``read_workers`` DataLoader processes (these take
Zarr's per-chunk Python off the training process's GIL, but cost ~0.15 s of start-up per epoch
and did not beat the thread on a 2-core machine). EEG, labels and masks (1/15 of the token bytes) always stay in memory.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from store_schema.errors import StoreError
from store_schema.contract.labels import Deap3Boundaries, LabelScheme, class_names, make_labels
from store_schema.contract.layout import (CROP_SIZE, FRAMES_PER_SEGMENT, N_EEG_CHANNELS, N_TOKENS,
                                          TOKEN_DIM, Stage)
from store_schema.contract.staleness import stale_reason
from store_schema.engine.store import FeatureStore
from train.readers import ROW_ARRAYS, FaceBatches, reader_context, shut_down

TOKEN_BYTES = FRAMES_PER_SEGMENT * N_TOKENS * TOKEN_DIM * 2
"""float16 tokens of one segment (735 KiB)."""
CROP_BYTES = FRAMES_PER_SEGMENT * CROP_SIZE * CROP_SIZE * 3
"""uint8 crops of one segment (1.4 MiB)."""


@dataclass(frozen=True)
class SubjectInfo:
    subject: int
    n_segments: int
    segment_fingerprint: str
    tokens_fingerprint: str | None
    weights_fingerprint: str | None
    random_weights: bool | None
    weights_provenance: dict | None = None
    """Where the tokens' weights came from, as the tokens record says (spec, repo, revision,
    origin, face_tuned); None for tokens recorded before provenance was."""


@dataclass(frozen=True)
class Split:
    """One fold: positions (into :class:`StoreData`'s flat index) to train and to test on."""

    fold: int
    name: str
    train: np.ndarray
    test: np.ndarray
    leaky: bool
    validation: np.ndarray | None = None  # held-out part of ``train`` (train.splits.plan_folds)


@dataclass
class Batch:
    positions: np.ndarray
    labels: torch.Tensor
    eeg: torch.Tensor | None = None
    face: torch.Tensor | None = None
    frame_mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.positions)


@dataclass
class StoreData:
    """The flat index of every usable segment of a store (one row per segment)."""

    store: FeatureStore
    scheme: LabelScheme
    subjects: list[SubjectInfo]
    subject: np.ndarray  # (N,) subject number of each row
    local: np.ndarray  # (N,) segment number within its subject
    trial: np.ndarray  # (N,) trial_index (0-based .dat trial)
    segment_index: np.ndarray  # (N,) window number within the trial
    labels: np.ndarray  # (N,) int class
    detected: np.ndarray  # (N, 10) bool; all True without a faces stage
    has_video: np.ndarray  # (N,) bool
    needs_tokens: bool
    skipped: list[str] = field(default_factory=list)
    faceless: list[dict] = field(default_factory=list)
    """Segments dropped for want of a face video: per subject, how many, of which 0-based trials,
    and whether the whole subject went."""
    weights_fingerprint: str | None = None
    random_weights: bool | None = None
    weights_provenance: dict | None = None
    """The tokens' weights' provenance (:attr:`SubjectInfo.weights_provenance`) when recorded."""
    face_from: str = "tokens"
    """What :attr:`Batch.face` holds: ``tokens`` (float16 (B, 10, 49, 768)) or ``crops`` (uint8
    (B, 10, 224, 224, 3), the faces stage's, never loaded whole)."""
    planted_frames: np.ndarray | None = None
    """(N, 10) bool: the frames a synthetic store planted the face cue in, to score MIL's picks
    (``planted_frames`` of the faces record, which the face stage takes from a synthetic DEAP
    folder's per-frame truth, or of the tokens record of :mod:`train.synthetic`); ``None`` for a
    store without them."""
    _eeg: torch.Tensor | None = None
    _tokens: torch.Tensor | None = None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | FeatureStore,
        *,
        labels: LabelScheme | str = LabelScheme.deap4,
        boundaries: Deap3Boundaries = Deap3Boundaries(),
        subjects: Sequence[int] | None = None,
        needs_tokens: bool = True,
        keep_faceless: bool = False,
        face_from: str = "tokens",
    ) -> StoreData:
        """``keep_faceless``: a face model keeps segments whose video is missing (black crops
        become tokens: contaminates training and test); by default they are dropped and listed
        in :attr:`faceless`. EEG-only (``needs_tokens=False``) always keeps every segment."""
        drop_faceless = needs_tokens and not keep_faceless
        faceless: list[dict] = []
        store = url if isinstance(url, FeatureStore) else FeatureStore.open(str(url), mode="r")
        scheme = LabelScheme(labels)
        wanted = set(subjects) if subjects is not None else None
        skipped: list[str] = []
        infos: list[SubjectInfo] = []
        columns: dict[str, list[np.ndarray]] = {k: [] for k in (
            "subject", "local", "trial", "segment_index", "labels", "detected", "has_video",
            "planted")}
        all_planted = needs_tokens

        committed = set(store.committed_subjects(Stage.segment))
        if wanted is not None:
            for s in sorted(wanted - committed):
                skipped.append(f"s{s:02d}: asked for, but its segment stage is not committed")
        if needs_tokens:
            for s in sorted(set(store.committed_subjects(Stage.tokens)) - committed):
                if wanted is None or s in wanted:
                    skipped.append(f"s{s:02d}: has tokens but no committed segment stage")
        for s in sorted(committed):
            if wanted is not None and s not in wanted:
                continue
            try:
                info, reason = _subject_info(store, s, needs_tokens, face_from)
                if info is None:
                    skipped.append(f"s{s:02d}: {reason}")
                    continue
                table = {name: store.read(s, Stage.segment, name) for name in (
                    "trial_index", "segment_index", "valence", "arousal")}
            except StoreError as err:  # uncommitted since listed: a preprocess run is rewriting it
                skipped.append(f"s{s:02d}: {err}")
                continue
            n = info.n_segments
            detected, has_video = np.ones((n, FRAMES_PER_SEGMENT), bool), np.ones(n, bool)
            try:
                if stale_reason(store, s, Stage.faces) is None:
                    faces_detected = store.read(s, Stage.faces, "detected")
                    if faces_detected.shape == detected.shape:
                        detected = faces_detected
                        has_video = store.read(s, Stage.faces, "has_video").astype(bool)
            except StoreError as err:
                if needs_tokens:  # a face model must know which segments have a face video
                    skipped.append(f"s{s:02d}: {err}")
                    continue
                # EEG only: the masks default to "every frame detected"
            try:
                y = make_labels(scheme, valence=table["valence"], arousal=table["arousal"],
                                boundaries=boundaries)
            except ValueError as err:
                skipped.append(f"s{s:02d}: ratings unusable for labels ({err})")
                continue
            planted = np.zeros((n, FRAMES_PER_SEGMENT), bool)
            listed = _planted_frames(store, s) if needs_tokens else None
            if isinstance(listed, list) and len(listed) == n:
                for row, frames in enumerate(listed):
                    planted[row, frames] = True
            else:
                all_planted = False
            keep = np.ones(n, bool)
            if drop_faceless and not has_video.all():
                trials = sorted(int(t) for t in np.unique(table["trial_index"][~has_video]))
                faceless.append({"subject": s, "segments": int((~has_video).sum()),
                                 "trials": trials, "whole_subject": bool(not has_video.any())})
                if not has_video.any():
                    skipped.append(f"s{s:02d}: no face video for any of its {n} segments (face "
                                   "models drop faceless segments; EEG-only models use them)")
                    continue
                keep = has_video
            infos.append(info)
            columns["subject"].append(np.full(int(keep.sum()), s, np.int64))
            columns["local"].append(np.flatnonzero(keep).astype(np.int64))
            columns["trial"].append(table["trial_index"][keep].astype(np.int64))
            columns["segment_index"].append(table["segment_index"][keep].astype(np.int64))
            columns["labels"].append(y[keep].astype(np.int64))
            columns["detected"].append(detected[keep].astype(bool))
            columns["has_video"].append(has_video[keep])
            columns["planted"].append(planted[keep])

        if not infos:
            detail = "; ".join(skipped) if skipped else "no subject has a committed segment stage"
            raise StoreError(f"{store.url}: no usable subject to train on ({detail}); run "
                             "`milmer preprocess` first")
        weights, random_weights = None, None
        if needs_tokens:  # crops: no refusal, and no default weights unless one set
            weights, random_weights = _one_weights_fingerprint(store.url, infos, face_from == "tokens")
        planted = np.concatenate(columns.pop("planted"))
        return cls(
            store=store, scheme=scheme, subjects=infos, needs_tokens=needs_tokens,
            skipped=skipped, weights_fingerprint=weights, random_weights=random_weights,
            weights_provenance=next((i.weights_provenance for i in infos if i.weights_provenance),
                                    None) if needs_tokens and weights else None, face_from=face_from,
            faceless=faceless,
            planted_frames=planted if all_planted else None,
            **{k: np.concatenate(v) for k, v in columns.items()},
        )

    # -- facts -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_names(self) -> tuple[str, ...]:
        return class_names(self.scheme)

    @property
    def subject_numbers(self) -> list[int]:
        return [info.subject for info in self.subjects]

    def bytes_per_segment(self) -> int:
        face = CROP_BYTES if self.face_from == "crops" else TOKEN_BYTES
        return (face if self.needs_tokens else 0) + N_EEG_CHANNELS * 384 * 4

    # -- protocols -------------------------------------------------------------------------

    def splits(self, protocol: str, *, folds: int = 5, seed: int = 0) -> list[Split]:
        """The folds of ``protocol``; every row is tested in exactly one fold."""
        if protocol == "loso":
            if len(self.subjects) < 2:
                raise StoreError(f"{self.store.url}: leave-one-subject-out needs at least 2 usable "
                                 f"subjects, found {self.subject_numbers}")
            return [Split(fold=f, name=f"s{s:02d}", train=np.flatnonzero(self.subject != s),
                          test=np.flatnonzero(self.subject == s), leaky=False)
                    for f, s in enumerate(self.subject_numbers)]
        if protocol not in ("trial", "segment"):
            raise ValueError(f"unknown protocol {protocol!r}: trial, segment or loso")
        fold_of = np.empty(len(self), np.int64)
        for s in self.subject_numbers:
            rows = np.flatnonzero(self.subject == s)
            rng = np.random.default_rng([seed, s])
            if protocol == "trial":
                trials, first = np.unique(self.trial[rows], return_index=True)
                unit_fold = _stratified_deal(self.labels[rows][first], folds, rng)
                fold_of[rows] = unit_fold[np.searchsorted(trials, self.trial[rows])]
            else:
                fold_of[rows] = _stratified_deal(self.labels[rows], folds, rng)
        return [Split(fold=f, name=f"fold{f}", train=np.flatnonzero(fold_of != f),
                      test=np.flatnonzero(fold_of == f), leaky=protocol == "segment")
                for f in range(folds)]

    def hold_out_validation(self, positions: np.ndarray, *, fraction: float, seed: int,
                            fold: int) -> tuple[np.ndarray, np.ndarray]:
        """Split a fold's training ``positions`` into (fit, validation), by whole trials.

        Per class, ``round(fraction x n)`` of the n (subject, trial) units of that class in
        ``positions`` (at least one when n ≥ 2, never all), drawn by ``(seed, fold)``: class
        balance follows the training fold's. For the ``segment`` protocol a unit is the training
        segments of one trial.
        """
        positions = np.asarray(positions, np.int64)
        if fraction <= 0 or not len(positions):
            return positions, positions[:0]
        unit = self.subject[positions] * 1_000_003 + self.trial[positions]
        units, first, inverse = np.unique(unit, return_index=True, return_inverse=True)
        unit_labels = self.labels[positions][first]
        rng = np.random.default_rng([seed, fold, 0x5A11D])
        held = np.zeros(len(units), bool)
        for label in np.unique(unit_labels):
            members = rng.permutation(np.flatnonzero(unit_labels == label))
            n = len(members)
            k = min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0
            held[members[:k]] = True
        return positions[~held[inverse]], positions[held[inverse]]

    # -- loading ---------------------------------------------------------------------------

    def fits_in_memory(self, fraction: float = 0.5) -> bool:
        return len(self) * self.bytes_per_segment() <= fraction * available_memory()

    @property
    def loaded(self) -> bool:
        return self._eeg is not None and (self._tokens is not None or not self.needs_tokens)

    def _rows_of(self, info: SubjectInfo) -> np.ndarray:
        return self.local[self.subject == info.subject]

    def load_eeg(self) -> None:
        if self._eeg is None:
            parts = [self._select(self.store.read(info.subject, Stage.segment, "eeg"), info)
                     for info in self.subjects]
            self._eeg = torch.from_numpy(np.concatenate(parts).astype(np.float32, copy=False))

    def _select(self, whole: np.ndarray, info: SubjectInfo) -> np.ndarray:
        rows = self._rows_of(info)
        return whole if len(rows) == len(whole) else whole[rows]

    def load(self) -> None:
        """Read every row's EEG and tokens into memory (whole arrays, contiguous reads); crops
        are never loaded whole."""
        self.load_eeg()
        if self.needs_tokens and self._tokens is None and self.face_from == "tokens":
            out = torch.empty((len(self), FRAMES_PER_SEGMENT, N_TOKENS, TOKEN_DIM), dtype=torch.float16)
            start = 0
            for info in self.subjects:
                part = self._select(self.store.read(info.subject, Stage.tokens, "tokens"), info)
                out[start:start + len(part)] = torch.from_numpy(part)
                start += len(part)
            self._tokens = out

    def eeg_rows(self, positions: np.ndarray) -> torch.Tensor:
        """EEG windows (n, 32, 384) float32 of ``positions``."""
        self.load_eeg()
        return self._eeg[torch.from_numpy(np.asarray(positions, np.int64))]  # type: ignore[index]

    def token_statistics(self, positions: np.ndarray, *, covariance: bool = True, chunk: int = 64
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Over every frame of ``positions``, in one pass over their tokens: the mean and std
        (49, 768) per token position and channel, and (``covariance``) the (768, 768) covariance
        of the tokens minus their position's mean, pooled over positions; float32. What
        ``face_norm`` uses (computed on the fit rows only)."""
        positions = np.asarray(positions, np.int64)
        total = torch.zeros((N_TOKENS, TOKEN_DIM), dtype=torch.float64)
        square = torch.zeros_like(total)
        outer = torch.zeros((TOKEN_DIM, TOKEN_DIM), dtype=torch.float64) if covariance else None
        for _, tokens in self.token_chunks(positions, chunk=chunk):
            tokens = tokens.float()
            total += tokens.sum(dim=(0, 1), dtype=torch.float64)
            square += tokens.square().sum(dim=(0, 1), dtype=torch.float64)
            if outer is not None:  # float32 products of float16 tokens, summed in float64
                flat = tokens.reshape(-1, TOKEN_DIM)
                outer += (flat.T @ flat).double()
        n = max(len(positions) * FRAMES_PER_SEGMENT, 1)
        mean = total / n
        std = (square / n - mean.square()).clamp_min(0).sqrt()
        cov = None
        if outer is not None:  # E[x xᵀ] - E over positions of μ_p μ_pᵀ
            cov = (outer / (n * N_TOKENS) - mean.T @ mean / N_TOKENS).float()
        return mean.float(), std.float(), cov

    def token_chunks(self, positions: np.ndarray, *, chunk: int = 64
                     ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(rows, tokens)`` for ``positions`` in chunks of ``chunk`` rows: float16 tokens
        (n, 10, 49, 768) from memory once loaded, else read from the store."""
        positions = np.asarray(positions, np.int64)
        for start in range(0, len(positions), chunk):
            rows = positions[start:start + chunk]
            yield rows, (self._tokens[torch.from_numpy(rows)] if self._tokens is not None
                         else torch.from_numpy(self.read_tokens(rows)))

    def read_tokens(self, positions: np.ndarray) -> np.ndarray:
        """Rows' face input (tokens (n, 10, 49, 768) float16, or crops, as ``face_from``), their
        chunks read concurrently from the store."""
        return self.read_rows(self.face_from, positions)

    def read_rows(self, what: str, positions: np.ndarray) -> np.ndarray:
        """Rows of ``what`` (a key of :data:`ROW_ARRAYS`: ``eeg``, ``tokens`` or ``crops``) at
        ``positions``, in that order, read from the store (chunks fetched concurrently)."""
        stage, name = ROW_ARRAYS[what]
        positions = np.asarray(positions, np.int64)
        return self.store.read_rows(stage, name, self.subject[positions], self.local[positions])

    def batches(
        self,
        positions: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool,
        seed: Sequence[int] | int = 0,
        eeg: bool = True,
        face: bool = True,
        stream: bool | None = None,
        prefetch: int = 4,
        workers: int = 0,
        pin_memory: bool = False,
    ) -> Iterator[Batch]:
        """Batches over ``positions`` (in order, or shuffled by ``seed``); tensors on the CPU.

        ``stream=None`` streams tokens exactly when they are not loaded. Streamed tokens are read
        by ``workers`` processes (``0``: one thread of this process; processes come from a fork
        server, see :func:`train.readers.reader_context`), ``prefetch`` batches each ahead of the model.
        """
        positions = np.asarray(positions, np.int64)
        if shuffle:
            positions = positions[np.random.default_rng(seed).permutation(len(positions))]
        chunks = [positions[i:i + batch_size] for i in range(0, len(positions), batch_size)]
        face = face and self.needs_tokens
        if eeg:
            self.load_eeg()
        stream = (self._tokens is None) if stream is None else stream
        if face and not stream and self._tokens is None:
            self.load()

        def make(chunk: np.ndarray, tokens: torch.Tensor | None) -> Batch:
            index = torch.from_numpy(chunk)
            return Batch(
                positions=chunk, labels=torch.from_numpy(self.labels[chunk]),
                eeg=self._eeg[index] if eeg else None,  # type: ignore[index]
                face=tokens, frame_mask=torch.from_numpy(self.detected[chunk]) if face else None)

        if not face or not stream:
            for chunk in chunks:
                yield make(chunk, self._tokens[torch.from_numpy(chunk)] if face else None)  # type: ignore[index]
            return
        if workers > 0 and not self.store.url.startswith("memory://"):
            # Reading holds the GIL for much of its time (Zarr's Python per chunk): in worker
            # processes it overlaps with the training step instead of stealing from it.
            reader = FaceBatches(self.store.url, self.subject, self.local, chunks, self.face_from)
            loader = torch.utils.data.DataLoader(
                reader, batch_size=None, shuffle=False, num_workers=workers,
                prefetch_factor=max(1, prefetch), pin_memory=pin_memory,
                multiprocessing_context=reader_context())
            # Workers are shut down here, at the end or when the consumer stops early: one left
            # to the garbage collector can die later, inside another caller's code.
            tokens_of = iter(loader)
            try:
                for chunk, tokens in zip(chunks, tokens_of):
                    yield make(chunk, tokens)
            finally:
                shut_down(tokens_of)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="milmer-read") as pool:
            pending: deque = deque()
            upcoming = iter(chunks)

            def submit() -> None:
                chunk = next(upcoming, None)
                if chunk is not None:
                    pending.append((chunk, pool.submit(self.read_tokens, chunk)))

            for _ in range(max(1, prefetch)):
                submit()
            while pending:
                chunk, future = pending.popleft()
                submit()
                tokens = torch.from_numpy(future.result())
                yield make(chunk, tokens.pin_memory() if pin_memory else tokens)


def _planted_frames(store: FeatureStore, subject: int) -> object:
    """The subject's ``planted_frames`` list (faces record first, then tokens), if any."""
    for stage in (Stage.faces, Stage.tokens):
        record = store.record(subject, stage)
        if record is not None and record.extra.get("planted_frames") is not None:
            return record.extra["planted_frames"]
    return None


def _subject_info(store: FeatureStore, subject: int, needs_tokens: bool,
                  face_from: str = "tokens") -> tuple[SubjectInfo | None, str]:
    segment = store.record(subject, Stage.segment)
    if segment is None:
        return None, "its segment stage was uncommitted meanwhile (a preprocess run is rewriting it)"
    stale = stale_reason(store, subject, Stage.segment)
    if stale:
        return None, f"segment stage: {stale}; re-run `milmer preprocess`"
    n = segment.arrays["eeg"].shape[0] if "eeg" in segment.arrays else 0
    if n == 0:
        return None, "its segment stage holds no segment"
    if needs_tokens and face_from == "crops":
        return _crops_info(store, subject, segment, n)
    tokens = store.record(subject, Stage.tokens)
    if tokens is None:
        if needs_tokens:
            return None, "no committed tokens stage (run `milmer preprocess --stages tokens`)"
        return SubjectInfo(subject, n, segment.fingerprint, None, None, None), ""
    if needs_tokens:
        for stage in (Stage.faces, Stage.tokens):
            stale = stale_reason(store, subject, stage)
            if stale:
                return None, (f"{stage.value} stage: {stale}; re-run `milmer preprocess --stages "
                              "faces,tokens`")
        n_tok = tokens.arrays["tokens"].shape[0] if "tokens" in tokens.arrays else -1
        if n_tok != n:
            return None, (f"tokens hold {n_tok} segments but the segment stage {n}; re-run "
                          "`milmer preprocess --stages faces,tokens`")
    weights = tokens.params.get("weights_fingerprint") or tokens.extra.get("weights_fingerprint")
    random_weights = tokens.extra.get("random_weights")
    if random_weights is None and isinstance(weights, str):
        random_weights = weights.startswith("random:")
    return SubjectInfo(subject, n, segment.fingerprint, tokens.fingerprint,
                       str(weights) if weights else "unrecorded", random_weights,
                       tokens.extra.get("weights")), ""


def _crops_info(store: FeatureStore, subject: int, segment: object, n: int
                ) -> tuple[SubjectInfo | None, str]:
    """A subject whose crops feed Swin in the loop: committed, fresh faces with ``n`` segments;
    its tokens' weights are kept when the tokens are fresh and match (the default start)."""
    faces = store.record(subject, Stage.faces)
    stale = "not committed" if faces is None else stale_reason(store, subject, Stage.faces)
    if stale:
        return None, f"faces stage: {stale}; run `milmer preprocess --stages faces`"
    n_crops = faces.arrays["crops"].shape[0] if "crops" in faces.arrays else -1  # type: ignore[union-attr]
    if n_crops != n:
        return None, f"faces hold {n_crops} segments but the segment stage {n}; re-run the faces stage"
    info, _ = _subject_info(store, subject, needs_tokens=False)
    tokens = store.record(subject, Stage.tokens)
    if info is None or tokens is None or stale_reason(store, subject, Stage.tokens) \
            or tokens.arrays.get("tokens") is None or tokens.arrays["tokens"].shape[0] != n:
        return SubjectInfo(subject, n, segment.fingerprint, None, None, None), ""  # type: ignore[attr-defined]
    return info, ""


def _one_weights_fingerprint(url: str, infos: list[SubjectInfo], refuse: bool = True
                             ) -> tuple[str | None, bool | None]:
    groups: dict[str, list[int]] = {}
    for info in infos:
        groups.setdefault(str(info.weights_fingerprint), []).append(info.subject)
    if not refuse:
        return (next(iter(groups)), infos[0].random_weights) if len(groups) == 1 and None not in [
            i.weights_fingerprint for i in infos] else (None, None)
    if len(groups) > 1:
        listing = "; ".join(f"{fp} for {', '.join(f's{s:02d}' for s in subs)}"
                            for fp, subs in sorted(groups.items(), key=lambda kv: kv[1]))
        raise StoreError(
            f"{url}: token sets come from different Swin weights ({listing}); training refuses to "
            "mix them. Re-run `milmer preprocess --stages tokens --weights ...` for the odd "
            "subjects, or pick one set with --subjects")
    (fingerprint, subjects), = groups.items()
    random_weights = next((i.random_weights for i in infos if i.random_weights is not None), None)
    return fingerprint, random_weights


def _stratified_deal(unit_labels: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of each unit: units shuffled, grouped by label, dealt round-robin (balanced folds)."""
    order = rng.permutation(len(unit_labels))
    order = order[np.argsort(unit_labels[order], kind="stable")]
    fold = np.empty(len(unit_labels), np.int64)
    offset = int(rng.integers(folds))
    fold[order] = (np.arange(len(order)) + offset) % folds
    return fold


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4 << 30
