"""Training heads on cached tokens: data contract, honest protocols, learning, outputs, resume.

Stores come from :func:`train.synthetic.write_planted_store`: EEG carries arousal (always) and
valence (in half the segments) as random-phase band power, face tokens carry valence (always, in 3 of 10 frames) and arousal
(in half the segments). Models here are narrow (d_model 64) for speed; the default config, the
paper's, is checked field by field and by parameter count.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from store_schema.errors import StoreError
from store_schema.contract.labels import LabelScheme
from tests.conftest import NARROW_HEADS
from train.ablations import ABLATIONS
from train.config import ModelConfig, TrainConfig, TrainError, resolve_config
from train.data import StoreData
from train.models import HeadModel, Milmer, build_model, count_parameters, model_class, model_kinds
from train.synthetic import write_planted_store
from train.probe import band_power_probe, modality_probes
from train.trainer import Trainer, cosine_factor, run_training, select_epoch

@pytest.fixture(autouse=True)
def _one_torch_thread():  # noqa: ANN202 - small models: one thread is as fast and never oversubscribes
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = str(tmp_path_factory.mktemp("train") / "store.zarr")
    write_planted_store(url, subjects=2, trials=16, segments_per_trial=2, seed=0)
    return url


def small_config(store: str, **overrides) -> TrainConfig:  # noqa: ANN003
    model = {**NARROW_HEADS, **overrides.pop("model", {})}
    fields = {"store": store, "epochs": 10, "folds": 4, "lr": 1e-3, **overrides, "model": model}
    return resolve_config(None, **fields)


@pytest.fixture(scope="module")
def trained(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Fusion, EEG-only and face-only runs on the planted store, trial protocol, EEG through the
    log-power tokenizer (the planted EEG is random-phase band power)."""
    torch.set_num_threads(1)
    runs = {}
    for kind in ("fusion", "eeg", "face"):
        out = tmp_path_factory.mktemp(f"run-{kind}")
        # 2 folds: each gets two trials of every class per subject, so training and test share
        # their class balance (with uneven folds a model that learns only half the quadrant is
        # pushed *below* chance on the other half by the training priors).
        cfg = small_config(store_url, folds=2, model={"kind": kind, "eeg_tokenizer": "log_power"})
        runs[kind] = (out, run_training(cfg, out, progress=False))
    return runs


# -- the paper's defaults -------------------------------------------------------------------


def test_default_config_is_the_papers() -> None:
    cfg = TrainConfig()
    m = cfg.model
    assert (cfg.lr, cfg.lr_final_factor, cfg.batch_size, cfg.epochs, cfg.seed) == (1e-4, 0.1, 14, 100, 0)
    assert (cfg.protocol, cfg.labels) == ("trial", LabelScheme.deap4)
    assert (m.kind, m.d_model, m.fusion_heads, m.fusion_ff, m.fusion_layers) == ("fusion", 768, 12, 2048, 2)
    assert (m.dropout, m.cls_dropout, m.n_queries, m.top_k, m.n_frames, m.mil, m.balance) == (
        0.2, 0.1, 64, 3, 10, "topk", "cross_attention")
    assert (m.eeg_channels, m.eeg_samples, m.mlp_hidden) == (32, 384, 3072)
    model = build_model(m, num_classes=4)
    # The released code's scorer alone has 1.4 B parameters; these heads are ~14 M in all.
    assert 5_000_000 < count_parameters(model) < 30_000_000
    assert sum(p.numel() for p in model.mil.scorer.parameters()) < 200_000
    enc = model.encoder.layers[0]
    assert enc.self_attn.num_heads == 12 and enc.linear1.out_features == 2048 and enc.self_attn.batch_first
    assert model.pos_face.shape == (1, 64, 768) and model.pos_eeg.shape == (1, 32, 768)


@pytest.mark.parametrize("kind", model_kinds())
def test_every_registered_kind_builds_from_a_default_config_and_refuses_unknown_arguments(
        kind: str) -> None:
    import inspect

    model = build_model(ModelConfig(kind=kind), num_classes=3)  # the paper's sizes
    assert type(model) is model_class(kind) and isinstance(model, HeadModel)
    out = model(torch.randn(2, 32, 384), torch.randn(2, 10, 49, 768).half(),
                torch.ones(2, 10, dtype=torch.bool))
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    # every argument the constructor takes is a config field, so a config can set it
    parameters = inspect.signature(model_class(kind)).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters.values())
    assert set(parameters) - {"num_classes"} <= set(ModelConfig.model_fields)
    # the config's values reach the model: narrow heads build narrow
    narrow = build_model(ModelConfig(kind=kind, **NARROW_HEADS), num_classes=3)
    assert count_parameters(narrow) < count_parameters(model)
    with pytest.raises(TypeError, match="n_querys"):
        model_class(kind)(num_classes=3, n_querys=8)  # a misspelt argument is refused, not dropped
    with pytest.raises(ValueError, match="unknown model kind 'milmer'"):
        model_class("milmer")


def test_models_are_registered_files_without_kind_branching_or_private_imports() -> None:
    import ast

    root = Path(__file__).resolve().parents[1] / "train"
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        assert source.count("\n") <= 600, f"{path}: over 600 lines"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("train"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path}:{node.lineno} imports private {private}"
            if (path.parent.name == "models" and isinstance(node, ast.Compare)
                    and any(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn) for op in node.ops)):
                names = {n.id if isinstance(n, ast.Name) else n.attr
                         for n in (node.left, *node.comparators) if isinstance(n, ast.Name | ast.Attribute)}
                assert "kind" not in names, f"{path}:{node.lineno} branches on a kind string"
    assert set(model_kinds()) == {"fusion", "eeg", "face", "concat", "deepcca"}


def test_every_eeg_tokenizer_a_config_offers_is_registered_by_name() -> None:
    from typing import get_args

    from train.config import EegTokenizerKind
    from train.models import create_tokenizer

    for name in get_args(EegTokenizerKind):
        tokenizer = create_tokenizer(name, eeg_samples=384, eeg_channels=32, sfreq=128.0, d_model=16)
        assert tokenizer(torch.randn(2, 32, 384)).shape == (2, tokenizer.n_tokens, 16), name
    with pytest.raises(ValueError, match="unknown eeg_tokenizer 'nope': raw, log_power"):
        create_tokenizer("nope", eeg_samples=384, eeg_channels=32, sfreq=128.0, d_model=16)


def test_cosine_schedule_decays_from_lr_to_a_tenth() -> None:
    factors = [cosine_factor(e, 100, 0.1) for e in range(101)]
    assert factors[0] == 1.0 and factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors, factors[1:]))


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_ablation_preset_is_a_valid_model(name: str, tmp_path: Path) -> None:
    cfg = resolve_config(name, model=NARROW_HEADS)
    model = build_model(cfg.model, num_classes=4)
    out = model(torch.randn(2, 32, 384), torch.randn(2, 10, 49, 768).half())
    assert out.shape == (2, 4) and torch.isfinite(out).all()


# -- model pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize("mil,balance,tokens", [
    ("topk", "cross_attention", 8), ("topk", "none", 147), ("topk", "mlp", 147),
    ("none", "none", 49), ("mean", "none", 49), ("amil", "none", 49), ("amil", "cross_attention", 8),
    ("all", "none", 490), ("all", "cross_attention", 8),
])
def test_face_path_gives_the_specified_token_counts(mil: str, balance: str, tokens: int) -> None:
    model = build_model(ModelConfig(**{**NARROW_HEADS, "mil": mil, "balance": balance}), num_classes=3)
    face_tokens, _ = model.face_tokens(torch.randn(2, 10, 49, 768))
    assert face_tokens.shape == (2, tokens, 64) and model.n_face_out == tokens


@pytest.mark.parametrize(("mil", "scorer_input"), [("topk", "mean"), ("amil", "mean"),
                                                   ("topk", "tokens"), ("topk", "deviation")])
def test_mil_scorer_receives_gradient_and_learns(mil: str, scorer_input: str) -> None:
    torch.manual_seed(0)
    model = Milmer(num_classes=4, mil=mil, mil_scorer_input=scorer_input)  # the paper's sizes
    scorer = model.mil.scorer
    before = [p.detach().clone() for p in scorer.parameters()]
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(2, 32, 384), torch.randn(2, 10, 49, 768)), torch.tensor([0, 3]))
    loss.backward()
    for name, p in scorer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches scorer.{name}"
    torch.optim.AdamW(model.parameters(), lr=1e-4).step()
    assert any(not torch.equal(a, b) for a, b in zip(before, scorer.parameters()))


def test_paper_table_rows_have_presets() -> None:
    assert ABLATIONS["queries-96"].model == {"n_queries": 96}
    assert ABLATIONS["queries-196"].model == {"n_queries": 196}
    assert ABLATIONS["mil-all"].model == {"mil": "all"}
    assert ABLATIONS["deepcca"].model == {"kind": "deepcca"}
    model = build_model(resolve_config("mil-all", model=NARROW_HEADS).model, num_classes=4)
    frames = torch.randn(2, 10, 49, 768)
    tokens, scores = model.mil(frames)
    assert scores is None and torch.equal(tokens, frames.reshape(2, 490, 768))  # every frame, as is


def test_spectral_presets_carry_their_training_fields_and_write_them_whole(tmp_path: Path) -> None:
    from train.ablations import write_presets

    config = resolve_config("eeg-band-maps", store="x")
    assert (config.lr, config.epochs, config.model.kind) == (1e-3, 20, "eeg")
    assert config.model.eeg_tokenizer == "band_maps" and config.model.d_model == 128
    assert resolve_config("eeg-band-maps", epochs=5).epochs == 5  # flags win
    assert resolve_config("mil-all").lr == 1e-4  # presets without training fields keep the paper's
    written = {p.stem: json.loads(p.read_text()) for p in write_presets(tmp_path)}
    assert written["eeg-de"] == {"lr": 1e-3, "epochs": 20,
                                 "model": {"kind": "eeg", "eeg_tokenizer": "de", "d_model": 128,
                                           "fusion_heads": 4, "balance_heads": 4, "fusion_ff": 256}}
    assert resolve_config(tmp_path / "eeg-de.json") == resolve_config("eeg-de")


def test_cca_loss_is_minus_the_total_canonical_correlation() -> None:
    from train.models.deepcca import cca_loss

    torch.manual_seed(0)
    h1 = torch.randn(500, 4)
    mixed = h1 @ torch.randn(4, 4)  # an invertible map of view 1: every correlation is 1
    assert float(cca_loss(h1, mixed, reg=1e-6)) == pytest.approx(-4.0, abs=1e-3)
    assert float(cca_loss(h1, torch.randn(500, 4))) > -0.5  # independent views: near 0


def test_deepcca_encoders_learn_from_the_cca_objective_only() -> None:
    model = build_model(ModelConfig(kind="deepcca", **NARROW_HEADS), num_classes=4)
    logits = model(torch.randn(6, 32, 384), torch.randn(6, 10, 49, 768))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3, 0, 1])).backward(retain_graph=True)
    encoders = [p for name, p in model.named_parameters() if "encoder" in name or "eeg_tokenizer" in name]
    assert all(p.grad is None for p in encoders)  # labels never shape the encoders
    assert model.cca.classifier.weight.grad is not None
    model.auxiliary_loss().backward()
    for part in (model.eeg_tokenizer, model.cca.eeg_encoder, model.cca.face_encoder):
        assert sum(float(p.grad.abs().sum()) for p in part.parameters() if p.grad is not None) > 0
    model.eval()
    model(torch.randn(2, 32, 384), torch.randn(2, 10, 49, 768))
    assert model.auxiliary_loss() is None


def test_topk_keeps_the_highest_scoring_frames_in_time_order() -> None:
    pool = build_model(ModelConfig(**NARROW_HEADS), num_classes=2).mil
    frames = torch.randn(3, 10, 49, 768)
    tokens, scores = pool(frames)
    best = scores.topk(3, dim=1).indices.sort(dim=1).values
    for b in range(3):
        kept = scores[b, best[b]]
        weights = 3 * kept / kept.sum()
        expected = (frames[b, best[b]] * weights[:, None, None]).reshape(147, 768)
        torch.testing.assert_close(tokens[b], expected)


def test_topk_gradient_all_reaches_the_frames_left_out_with_the_same_forward_pass() -> None:
    torch.manual_seed(0)
    frames = torch.randn(2, 10, 49, 768)
    probe = torch.randn(2, 147, 768)
    grads, outputs = {}, {}
    for mode in ("kept", "all"):
        torch.manual_seed(1)
        pool = build_model(ModelConfig(**{**NARROW_HEADS, "topk_gradient": mode}), num_classes=2).mil
        x = frames.clone().requires_grad_(True)
        tokens, scores = pool(x)
        (tokens * probe).sum().backward()
        outputs[mode], grads[mode] = tokens.detach(), x.grad.abs().sum(dim=(2, 3))
        left_out = torch.ones_like(scores, dtype=torch.bool).scatter(1, scores.topk(3, 1).indices, False)
    torch.testing.assert_close(outputs["kept"], outputs["all"])
    # kept: a frame left out gets nothing but rounding error; all: a real gradient
    assert torch.all(grads["kept"][left_out] < 1e-3 * grads["all"][left_out])


def test_undetected_frames_are_never_kept_when_masked() -> None:
    model = build_model(ModelConfig(**{**NARROW_HEADS, "mask_undetected": True}), num_classes=2)
    mask = torch.zeros(4, 10, dtype=torch.bool)
    mask[:, [1, 4, 8]] = True
    _, scores = model.mil(torch.randn(4, 10, 49, 768), mask)
    assert torch.all(scores[~mask] == 0)
    _, scores = model.mil(torch.randn(1, 10, 49, 768), torch.zeros(1, 10, dtype=torch.bool))
    assert torch.isfinite(scores).all()  # no detected frame at all: score them all


# -- data contract --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fusion", "concat"])
def test_modality_dropout_hides_the_dropped_tokens_in_training_only(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**NARROW_HEADS, "kind": kind, "modality_dropout": 0.5, "dropout": 0.0,
                                       "cls_dropout": 0.0, "eeg_tokenizer": "log_power"}), num_classes=4)
    eeg, face = torch.randn(64, 32, 384), torch.randn(64, 10, 49, 768)
    other_eeg, other_face = torch.randn_like(eeg), torch.randn_like(face)
    model.train()
    torch.manual_seed(1)
    dropped = model.dropped_modalities(64, device=eeg.device)
    assert dropped.any(0).all() and not dropped.all(1).any()  # both kinds occur, never both at once
    runs = {}
    for name, args in {"base": (eeg, face), "eeg": (other_eeg, face), "face": (eeg, other_face)}.items():
        torch.manual_seed(1)  # the same draw as `dropped`
        runs[name] = model(*args)
    for modality, column in (("eeg", 0), ("face", 1)):
        changed = (runs[modality] - runs["base"]).abs().amax(1) > 1e-5
        assert torch.equal(changed, ~dropped[:, column]), modality  # only the kept inputs count
    model.eval()
    assert ((model(other_eeg, face) - model(eeg, face)).abs().amax(1) > 1e-5).all()
    assert ((model(eeg, other_face) - model(eeg, face)).abs().amax(1) > 1e-5).all()



def test_store_data_reads_labels_and_masks_from_the_store(store_url: str) -> None:
    data = StoreData.open(store_url)
    assert len(data) == 64 and data.subject_numbers == [1, 2]
    assert data.weights_fingerprint == "random:0" and data.random_weights is True
    assert set(np.bincount(data.labels)) == {16}  # quadrants cycle over the trials
    assert not data.detected[::4, 0].any() and data.detected[1::4].all()


def test_streamed_batches_equal_in_memory_batches(store_url: str) -> None:
    streamed = StoreData.open(store_url)
    rows = np.arange(len(streamed))[::-3]
    loaded = StoreData.open(store_url)
    loaded.load()
    want = list(loaded.batches(rows, batch_size=5, shuffle=True, seed=7))
    for workers in (0, 2):  # a reader thread, or DataLoader processes
        got = list(streamed.batches(rows, batch_size=5, shuffle=True, seed=7, stream=True,
                                    prefetch=2, workers=workers))
        assert streamed._tokens is None  # streaming never loaded the tokens whole
        assert len(got) == len(want) == 5
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a.positions, b.positions)
            assert torch.equal(a.face, b.face) and torch.equal(a.eeg, b.eeg)
            assert torch.equal(a.labels, b.labels)


def test_mixed_token_weights_are_refused_naming_subjects_and_fingerprints(tmp_path: Path) -> None:
    fp = "sha256:" + "ab" * 32
    url = str(tmp_path / "mixed.zarr")
    write_planted_store(url, subjects=3, trials=4, segments_per_trial=1,
                        weights_fingerprint={1: "random:0", 2: fp, 3: "random:0"})
    with pytest.raises(StoreError) as err:
        StoreData.open(url)
    message = str(err.value)
    assert "random:0 for s01, s03" in message and f"{fp} for s02" in message and "--subjects" in message
    assert StoreData.open(url, subjects=[1, 3]).weights_fingerprint == "random:0"
    assert StoreData.open(url, needs_tokens=False).weights_fingerprint is None  # EEG needs no tokens


def test_subject_without_tokens_is_skipped_and_reported_unless_eeg_only(tmp_path: Path) -> None:
    url = str(tmp_path / "partial.zarr")
    write_planted_store(url, subjects=2, trials=4, segments_per_trial=2, tokens={1})
    data = StoreData.open(url)
    assert data.subject_numbers == [1]
    assert len(data.skipped) == 1 and data.skipped[0].startswith("s02: no committed tokens stage")
    assert StoreData.open(url, needs_tokens=False).subject_numbers == [1, 2]


def test_a_faceless_segment_never_reaches_a_face_models_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = str(tmp_path / "faceless.zarr")
    # s01 lost the videos of trials 0 and 3; s03 has no video at all
    write_planted_store(url, subjects=3, trials=8, segments_per_trial=2,
                        faceless_trials={1: {0, 3}, 3: set(range(8))})
    from train.trainer import Trainer

    seen: dict[str, set] = {}
    forward = Trainer.forward

    def spy(self: Trainer, model, batch):  # noqa: ANN001, ANN202
        rows = {(int(self.data.subject[p]), int(self.data.trial[p])) for p in batch.positions}
        seen.setdefault(self.config.model.kind, set()).update(rows)
        if self.use_face and not self.config.keep_faceless:
            assert self.data.has_video[batch.positions].all()
        return forward(self, model, batch)

    monkeypatch.setattr(Trainer, "forward", spy)
    faceless = {(1, 0), (1, 3)} | {(3, t) for t in range(8)}
    face = run_training(small_config(url, epochs=1, folds=2, model={"kind": "face"}),
                        tmp_path / "face", progress=False)
    assert seen["face"] and not seen["face"] & faceless
    assert face["n_segments"] == 2 * 16 - 4 and face["subjects"] == [1, 2]
    assert face["faceless"]["dropped"] is True and face["faceless"]["n_segments"] == 4 + 16
    assert face["faceless"]["subjects_without_video"] == ["s03"]
    assert face["faceless"]["by_subject"]["s01"] == {"segments": 4, "trials": [0, 3]}
    assert any(line.startswith("s03: no face video") for line in face["skipped_subjects"])

    eeg = run_training(small_config(url, epochs=1, folds=2, model={"kind": "eeg"}),
                       tmp_path / "eeg", progress=False)
    assert faceless <= seen["eeg"] and eeg["n_segments"] == 3 * 16  # EEG-only keeps everything
    assert eeg["faceless"]["dropped"] is False and eeg["test_segments_without_video"] == 20

    kept = run_training(small_config(url, epochs=1, folds=2, keep_faceless=True,
                                     model={"kind": "fusion"}), tmp_path / "kept", progress=False)
    assert faceless <= seen["fusion"] and "contaminated" in kept["faceless"]["note"]


@settings(max_examples=40, deadline=None)
@given(trials=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       segments=st.integers(1, 5), folds=st.integers(2, 6), seed=st.integers(0, 1000))
def test_trial_protocol_never_trains_on_a_segment_of_a_test_trial(
    trials: list[int], segments: int, folds: int, seed: int,
) -> None:
    data = _index_only(trials, segments, seed)
    splits = data.splits("trial", folds=folds, seed=seed)
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(len(data)))  # every segment tested exactly once
    for split in splits:
        assert not split.leaky
        assert not set(split.train) & set(split.test)
        train_trials = set(zip(data.subject[split.train], data.trial[split.train]))
        test_trials = set(zip(data.subject[split.test], data.trial[split.test]))
        assert not train_trials & test_trials
    again = data.splits("trial", folds=folds, seed=seed)  # deterministic by seed
    assert all(np.array_equal(a.test, b.test) for a, b in zip(splits, again))


def test_segment_and_loso_protocols() -> None:
    data = _index_only([8, 8, 8], 4, 0)
    segment = data.splits("segment", folds=4, seed=0)
    assert all(s.leaky for s in segment)
    # the paper's random split puts windows of one trial on both sides
    assert any(set(zip(data.subject[s.train], data.trial[s.train]))
               & set(zip(data.subject[s.test], data.trial[s.test])) for s in segment)
    loso = data.splits("loso")
    assert [s.name for s in loso] == ["s01", "s02", "s03"]
    for split, subject in zip(loso, (1, 2, 3)):
        assert set(data.subject[split.test]) == {subject} and subject not in set(data.subject[split.train])


def _index_only(trials: list[int], segments: int, seed: int) -> StoreData:
    """A StoreData index without a store (only what the protocols read)."""
    rng = np.random.default_rng(seed)
    subject, trial, labels = [], [], []
    for s, n in enumerate(trials, start=1):
        y = rng.integers(0, 4, n)
        subject += [s] * n * segments
        trial += list(np.repeat(np.arange(n), segments))
        labels += list(np.repeat(y, segments))
    n = len(subject)
    from train.data import SubjectInfo

    return StoreData(
        store=None, scheme=LabelScheme.deap4,  # type: ignore[arg-type]
        subjects=[SubjectInfo(s, k * segments, "", None, None, None) for s, k in enumerate(trials, 1)],
        subject=np.array(subject), local=np.zeros(n, np.int64), trial=np.array(trial),
        segment_index=np.zeros(n, np.int64), labels=np.array(labels),
        detected=np.ones((n, 10), bool), has_video=np.ones(n, bool), needs_tokens=False)


@settings(max_examples=40, deadline=None)
@given(trials=st.lists(st.integers(2, 12), min_size=1, max_size=4),
       segments=st.integers(1, 4), fraction=st.floats(0.05, 0.5), seed=st.integers(0, 1000))
def test_validation_is_whole_training_trials_per_class_and_deterministic(
    trials: list[int], segments: int, fraction: float, seed: int,
) -> None:
    data = _index_only(trials, segments, seed)
    for split in data.splits("trial", folds=2, seed=seed):
        fit, val = data.hold_out_validation(split.train, fraction=fraction, seed=seed, fold=split.fold)
        assert sorted(np.concatenate([fit, val])) == sorted(split.train)  # a partition of training
        units = lambda rows: set(zip(data.subject[rows], data.trial[rows]))  # noqa: E731
        assert not units(fit) & units(val) and not units(val) & units(split.test)  # whole trials
        for label in np.unique(data.labels[split.train]):  # per class: its share, never all
            n = len(units(split.train[data.labels[split.train] == label]))
            k = len(units(val[data.labels[val] == label]))
            assert k == (min(n - 1, max(1, round(fraction * n))) if n >= 2 else 0)
        again = data.hold_out_validation(split.train, fraction=fraction, seed=seed, fold=split.fold)
        assert np.array_equal(again[1], val)


def test_epoch_is_chosen_on_validation_and_never_sees_test_labels(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = small_config(store_url, epochs=6, folds=2, run_folds=[0], model={"kind": "eeg"})
    honest = run_training(cfg, tmp_path / "honest", progress=False)

    splits = StoreData.splits

    def scrambled_test_labels(self: StoreData, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        found = splits(self, *args, **kwargs)
        test = found[0].test
        self.labels[test] = (self.labels[test] + 1 + np.arange(len(test)) % 3) % 4  # all wrong
        return found

    monkeypatch.setattr(StoreData, "splits", scrambled_test_labels)
    tampered = run_training(cfg, tmp_path / "tampered", progress=False)
    fold = lambda run: json.loads((tmp_path / run / "folds" / "fold0.json").read_text())  # noqa: E731
    honest_fold, tampered_fold = fold("honest"), fold("tampered")
    # the same epoch, weights and predictions: only the test score (computed once) differs
    assert tampered["selected_epochs"] == honest["selected_epochs"]
    assert tampered_fold["y_pred"] == honest_fold["y_pred"]
    assert tampered_fold["history"] == [{**r, "seconds": t["seconds"]} for r, t in
                                        zip(honest_fold["history"], tampered_fold["history"])]
    assert tampered["accuracy"] != honest["accuracy"]
    # ... and it is the epoch with the best validation accuracy (ties: lower validation loss)
    history = honest_fold["history"]
    assert all(set(row) >= {"val_accuracy", "val_loss"} and not any(k.startswith("test") for k in row)
               for row in history)
    best = max(history, key=lambda r: (r["val_accuracy"], -r["val_loss"], -r["epoch"]))
    assert honest_fold["selected_epoch"] == best["epoch"] == honest["folds"][0]["selected_epoch"]
    assert honest["folds"][0]["validation"]["accuracy"] == best["val_accuracy"]
    assert honest["validation"]["fraction"] == 0.2 and "whole trials" in honest["validation"]["drawn"]
    n_val = honest["folds"][0]["validation"]["n_segments"]
    assert n_val > 0 and honest["folds"][0]["n_fit"] + n_val == honest["folds"][0]["n_train"]


def test_early_stopping_ends_a_stalled_fold_and_chooses_what_a_full_run_chooses_up_to_there(
    store_url: str, tmp_path: Path,
) -> None:
    cfg = small_config(store_url, epochs=8, folds=2, run_folds=[0],
                       model={"kind": "eeg", "eeg_tokenizer": "log_power"})
    full = run_training(cfg, tmp_path / "full", progress=False)
    early = run_training(cfg.model_copy(update={"early_stopping": 2}), tmp_path / "early", progress=False)
    stopped = early["folds"][0]["stopped_epoch"]
    assert stopped is not None and stopped < cfg.epochs  # validation stopped improving: it ended
    assert early["early_stopping"]["stopped_epochs"] == [stopped] and early["early_stopping"]["patience"] == 2
    assert "validation accuracy" in early["early_stopping"]["monitor"]
    assert full["early_stopping"]["stopped_epochs"] == [None] and full["early_stopping"]["patience"] is None
    history = lambda run: json.loads((tmp_path / run / "folds" / "fold0.json").read_text())["history"]  # noqa: E731
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    full_history, early_history = history("full"), history("early")
    assert drop(early_history) == drop(full_history[:stopped])  # the same epochs, run the same way
    chosen = select_epoch(full_history[:stopped], cfg.selection)
    assert early["selected_epochs"] == [chosen] and stopped - chosen == 2
    assert all(r["val_accuracy"] is not None for r in early_history)
    with pytest.raises(TrainError, match="early_stopping needs validation"):
        small_config(store_url, early_stopping=3, validation_fraction=0.0)


def test_select_epoch_reads_validation_only() -> None:
    rows = [{"epoch": 1, "val_accuracy": 0.5, "val_loss": 1.0, "test_accuracy": 0.9},
            {"epoch": 2, "val_accuracy": 0.7, "val_loss": 0.9, "test_accuracy": 0.1},
            {"epoch": 3, "val_accuracy": 0.7, "val_loss": 0.8, "test_accuracy": 0.2},
            {"epoch": 4, "val_accuracy": None, "val_loss": None, "test_accuracy": 1.0}]
    assert select_epoch(rows, "val_accuracy") == 3  # tie on accuracy: the lower loss
    assert select_epoch(rows, "val_loss") == 3
    assert select_epoch([{"epoch": 1, "val_accuracy": None, "val_loss": None}], "val_loss") is None


# -- learning -------------------------------------------------------------------------------


def test_fusion_and_each_modality_beat_chance_under_the_trial_protocol(trained) -> None:  # noqa: ANN001
    acc = {kind: metrics["accuracy"] for kind, (_, metrics) in trained.items()}
    chance = trained["fusion"][1]["chance"]
    assert chance == pytest.approx(0.25)
    assert acc["fusion"] >= chance + 0.45, acc  # both modalities together name the quadrant
    assert acc["eeg"] >= chance + 0.15, acc  # arousal always, valence in half the segments
    assert acc["face"] >= chance + 0.15, acc
    assert acc["fusion"] > max(acc["eeg"], acc["face"]), acc


def test_spectral_tokenizer_learns_band_power_near_the_probe_and_raw_does_not(
    trained, store_url: str, tmp_path: Path,  # noqa: ANN001
) -> None:
    spectral = trained["eeg"][1]
    cfg = small_config(store_url, folds=2, model={"kind": "eeg", "eeg_tokenizer": "raw"})
    raw = run_training(cfg, tmp_path / "raw", progress=False)
    # 20 epochs of 2 steps: band tokens start slower on 26 windows (after 10 epochs: 0.42)
    cfg = small_config(store_url, folds=2, epochs=20, model={"kind": "eeg", "eeg_tokenizer": "band_maps"})
    maps = run_training(cfg, tmp_path / "maps", progress=False)
    data = StoreData.open(store_url, needs_tokens=False)
    probe = band_power_probe(data, data.splits("trial", folds=2, seed=0))
    print({"log_power": spectral["accuracy"], "band_maps": maps["accuracy"], "raw": raw["accuracy"],
           "probe": probe["accuracy"]})
    assert probe["accuracy"] >= 0.6  # the windows carry it
    assert spectral["accuracy"] >= 0.8 * probe["accuracy"], (spectral["accuracy"], probe)
    assert maps["accuracy"] >= 0.8 * probe["accuracy"], (maps["accuracy"], probe)
    assert raw["accuracy"] < spectral["accuracy"] - 0.15  # the paper's tokenizer barely sees it


def test_fused_probe_adds_what_each_modality_lacks_and_chooses_without_the_test_labels(
        store_url: str) -> None:
    # The planted store: EEG carries arousal always, the face valence always (each the other
    # dimension in half the segments), so each probe alone tops out near 0.75 on DEAP-4.
    data = StoreData.open(store_url)
    data.load()
    splits = data.splits("trial", folds=2, seed=0)
    probes = modality_probes(data, splits)
    print({k: probes[k]["accuracy"] for k in ("eeg", "face", "fusion")}, probes["choices"])
    assert min(probes["eeg"]["accuracy"], probes["face"]["accuracy"]) >= 0.6
    assert probes["fusion"]["accuracy"] >= max(probes["eeg"]["accuracy"], probes["face"]["accuracy"]) + 0.1
    # Fold 0's test labels scrambled: its score drops, its choices (C, fusion weights) stay.
    test = splits[0].test
    scrambled = data.labels.copy()
    scrambled[test] = np.random.default_rng(0).permutation(scrambled[test])
    data.labels = scrambled
    again = modality_probes(data, splits[:1])
    assert again["choices"] == probes["choices"][:1]
    assert again["fusion"]["folds"][0] < probes["fusion"]["folds"][0] - 0.3


def test_spectral_standardisation_uses_the_fitted_rows_only(trained, store_url: str) -> None:  # noqa: ANN001
    from safetensors.torch import load_file

    from train.models.eeg_tokenizers import DE_BANDS, SpectralTokenizer

    out, metrics = trained["eeg"]
    data = StoreData.open(store_url, needs_tokens=False)
    split = data.splits("trial", folds=2, seed=0)[0]
    fit, val = data.hold_out_validation(split.train, fraction=0.2, seed=0, fold=0)
    tokenizer = build_model(ModelConfig(kind="eeg", eeg_tokenizer="log_power", **NARROW_HEADS),
                            num_classes=4).eeg_tokenizer
    features = tokenizer.features(data.eeg_rows(fit))
    saved = load_file(str(out / "selected" / "fold0.safetensors"))
    torch.testing.assert_close(saved["eeg_tokenizer.mean"], features.mean(dim=0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(saved["eeg_tokenizer.std"], features.std(dim=0, unbiased=False),
                               rtol=1e-3, atol=1e-3)
    everything = tokenizer.features(data.eeg_rows(np.arange(len(data)))).mean(dim=0)
    assert not torch.allclose(saved["eeg_tokenizer.mean"], everything, atol=1e-3)
    de = SpectralTokenizer(bands=DE_BANDS)
    assert de(torch.randn(2, 32, 384)).shape == (2, 32, 768)


def test_band_maps_tokens_hold_one_band_of_every_channel() -> None:
    from train.models.eeg_tokenizers import LOG_POWER_BANDS

    model = build_model(ModelConfig(kind="eeg", eeg_tokenizer="band_maps", **NARROW_HEADS), num_classes=4)
    maps = model.eeg_tokenizer
    eeg = torch.randn(3, 32, 384)
    maps.fit_statistics(torch.randn(20, 32, 384))
    standard = (maps.features(eeg) - maps.mean) / maps.std  # (3, 32 channels, 22 bands)
    tokens = maps(eeg)
    assert tokens.shape == (3, len(LOG_POWER_BANDS), NARROW_HEADS["d_model"])
    torch.testing.assert_close(tokens, maps.proj(standard.transpose(1, 2)))
    band = 4  # each band has a projection of its own: its token reads its 32 channels only
    torch.testing.assert_close(tokens[:, band], standard[:, :, band] @ maps.proj.weight[band]
                               + maps.proj.bias[band])
    # the transformer gets one position embedding per band token
    assert model.pos_eeg.shape[1] == len(LOG_POWER_BANDS) and model(eeg).shape == (3, 4)


@pytest.mark.parametrize("stream", [False, True])
def test_face_normalisation_uses_the_fitted_rows_only(store_url: str, stream: bool) -> None:
    data = StoreData.open(store_url)
    if not stream:
        data.load()
    split = data.splits("trial", folds=2, seed=0)[0]
    fit, _ = data.hold_out_validation(split.train, fraction=0.2, seed=0, fold=0)
    tokens = torch.from_numpy(data.read_tokens(fit)).double()  # (n, 10, 49, 768)
    everything = torch.from_numpy(data.read_tokens(np.arange(len(data)))).double().mean(dim=(0, 1))

    def prepared(face_norm: str) -> HeadModel:
        config = small_config(store_url, folds=2, model={"kind": "face", "face_norm": face_norm})
        model = build_model(config.model, num_classes=4)
        Trainer(config, data, torch.device("cpu"), stream=stream).prepare(model, fit)
        return model

    standard = prepared("standardize")
    torch.testing.assert_close(standard.face_norm.mean, tokens.mean(dim=(0, 1)).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(standard.face_norm.std, tokens.std(dim=(0, 1), unbiased=False).float(),
                               rtol=1e-3, atol=1e-3)
    assert not torch.allclose(standard.face_norm.mean, everything.float(), atol=1e-3)
    seen = standard.face_input(torch.from_numpy(data.read_tokens(fit))).double()
    assert seen.mean(dim=(0, 1)).abs().max() < 1e-3  # what MIL and the projection see

    white = prepared("whiten")
    torch.testing.assert_close(white.face_norm.mean, standard.face_norm.mean)
    seen = white.face_input(torch.from_numpy(data.read_tokens(fit))).double().reshape(-1, 768)
    values = torch.linalg.eigvalsh(seen.T @ seen / len(seen))
    # every direction the fit rows span comes out at unit variance (the ridge shrinks the rest)
    assert values.max() < 1.01 and (values > 0.5).sum() >= min(len(seen) // 49, 768) // 2
    assert build_model(ModelConfig(kind="face"), num_classes=4).face_input(
        torch.ones(1, 10, 49, 768, dtype=torch.float16)).eq(1).all()  # "none": tokens as cached


def test_a_checkpoint_from_before_face_norm_was_a_component_still_loads() -> None:
    config = ModelConfig(kind="face", face_norm="standardize", **NARROW_HEADS)
    saved = build_model(config, num_classes=4).state_dict()
    legacy = {{"face_norm.mean": "face_mean", "face_norm.std": "face_std"}.get(k, k): v
              for k, v in saved.items()}
    legacy["face_mean"] = torch.full_like(legacy["face_mean"], 2.0)
    model = build_model(config, num_classes=4)
    model.load_state_dict(legacy, strict=True)
    assert model.face_norm.mean.eq(2.0).all() and "face_mean" in legacy  # the caller's dict kept


def test_topk_picks_hit_the_planted_expressive_frames_above_the_random_rate(trained) -> None:  # noqa: ANN001
    hits = trained["fusion"][1]["mil_planted_hit_rate"]
    assert hits["random_rate"] == pytest.approx(0.3) and hits["n_picks"] == 64 * 3
    assert hits["rate"] >= hits["random_rate"] + 0.1, hits
    assert trained["eeg"][1]["mil_planted_hit_rate"] is None  # no MIL, nothing to score


def test_run_writes_metrics_plots_config_and_checkpoints(trained) -> None:  # noqa: ANN001
    out, metrics = trained["fusion"]
    on_disk = json.loads((out / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "per_class_f1", "confusion", "per_subject", "protocol",
                "leaky", "chance"):
        assert key in on_disk, key
    assert on_disk["protocol"] == "trial" and on_disk["leaky"] is False
    assert set(on_disk["per_class_f1"]) == {"HAHV", "HALV", "LAHV", "LALV"}
    assert np.asarray(on_disk["confusion"]).sum() == on_disk["n_test"] == 64
    assert set(on_disk["per_subject"]) == {"s01", "s02"}
    assert on_disk["random_weights"] is True and on_disk["weights_fingerprint"] == "random:0"
    for png in ("confusion.png", "curves.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TrainConfig.model_validate_json((out / "config.json").read_text()).model.d_model == 64
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        f"fold{f}.safetensors" for f in range(2)]


def test_segment_protocol_marks_its_outputs_leaky(store_url: str, tmp_path: Path) -> None:
    metrics = run_training(small_config(store_url, protocol="segment", epochs=1, run_folds=[0]),
                           tmp_path, progress=False)
    assert metrics["leaky"] is True and metrics["protocol"] == "segment" and metrics["leak_note"]
    assert json.loads((tmp_path / "metrics.json").read_text())["leaky"] is True


def test_deepcca_baseline_trains_from_the_store(store_url: str, tmp_path: Path) -> None:
    metrics = run_training(small_config(store_url, epochs=2, folds=2, run_folds=[0],
                                        model={"kind": "deepcca"}), tmp_path, progress=False)
    assert metrics["model"] == "deepcca" and metrics["n_test"] == 32


def test_training_can_stream_tokens_from_the_store(store_url: str, tmp_path: Path) -> None:
    metrics = run_training(small_config(store_url, epochs=1, folds=2, run_folds=[0], in_memory="never"),
                           tmp_path, progress=False)
    assert metrics["data"] == "streamed" and metrics["n_test"] == 32


# -- checkpoints and resume -----------------------------------------------------------------


def test_interrupted_run_resumes_where_it_stopped_and_matches_an_uninterrupted_one(
    store_url: str, tmp_path: Path,
) -> None:
    cfg = small_config(store_url, epochs=3, run_folds=[1])
    straight = run_training(cfg, tmp_path / "straight", progress=False)

    def stop_after_two(fold: int, epochs_done: int, row: dict) -> None:
        if epochs_done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path / "cut", progress=False, on_epoch_end=stop_after_two)
    seen = []
    resumed = run_training(cfg, tmp_path / "cut", resume=True, progress=False,
                           on_epoch_end=lambda fold, done, row: seen.append(done))
    assert seen == [3]  # only the missing epoch ran
    history = json.loads((tmp_path / "cut" / "folds" / "fold1.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    want = json.loads((tmp_path / "straight" / "folds" / "fold1.json").read_text())
    got = json.loads((tmp_path / "cut" / "folds" / "fold1.json").read_text())
    assert got["y_pred"] == want["y_pred"]
    assert history[-1]["train_loss"] == pytest.approx(want["history"][-1]["train_loss"], rel=1e-5)
    assert resumed["accuracy"] == straight["accuracy"]

    # more epochs on a finished run continue the count from the checkpoint
    longer = cfg.model_copy(update={"epochs": 4})
    seen.clear()
    run_training(longer, tmp_path / "cut", resume=True, progress=False,
                 on_epoch_end=lambda fold, done, row: seen.append(done))
    assert seen == [4]


def test_resume_refuses_changed_settings_and_a_used_folder_without_resume(
    store_url: str, tmp_path: Path,
) -> None:
    cfg = small_config(store_url, epochs=1, run_folds=[0])
    run_training(cfg, tmp_path, progress=False)
    with pytest.raises(TrainError, match="already holds a run"):
        run_training(cfg, tmp_path, progress=False)
    with pytest.raises(TrainError, match="lr: 0.001 -> 0.002"):
        run_training(cfg.model_copy(update={"lr": 2e-3}), tmp_path, resume=True, progress=False)


def test_folds_run_by_separate_invocations_pool_into_one_report(store_url: str, tmp_path: Path) -> None:
    cfg = small_config(store_url, epochs=1, folds=2, run_folds=[0], model={"kind": "eeg"})
    first = run_training(cfg, tmp_path, progress=False)
    assert first["n_test"] == 32 and [f["fold"] for f in first["folds"]] == [0]
    both = run_training(cfg.model_copy(update={"run_folds": [1]}), tmp_path, resume=True, progress=False)
    assert both["n_test"] == 64 and [f["fold"] for f in both["folds"]] == [0, 1]


# -- command line ---------------------------------------------------------------------------


def test_cli_train_has_help() -> None:
    from flows.cli import app

    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "--protocol" in result.output and "--resume" in result.output


def test_cli_train_writes_a_run_and_reports_store_errors(store_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from flows.cli import app

    # Without a tracking URI and without --track, mlflow is never imported (None in sys.modules
    # makes any `import mlflow` raise).
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setitem(sys.modules, "mlflow", None)

    config = tmp_path / "small.json"
    config.write_text(json.dumps({"model": NARROW_HEADS, "lr": 1e-3, "run_folds": [0]}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--store", store_url, "--out", str(out), "--config", str(config), "--epochs", "1",
        "--folds", "2", "--model", "eeg", "--labels", "deap2-arousal", "--no-progress"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "eeg" and metrics["labels"] == "deap2-arousal"
    assert set(metrics["per_class_f1"]) == {"low", "high"}
    again = CliRunner().invoke(app, ["train", "--store", store_url, "--out", str(out), "--resume",
                                     "--epochs", "2", "--no-progress"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "config.json").read_text())["epochs"] == 2
    missing = CliRunner().invoke(app, ["train", "--store", str(tmp_path / "nope.zarr"),
                                       "--out", str(tmp_path / "r2")])
    assert missing.exit_code == 2 and "no feature store here" in missing.output


def test_a_subject_uncommitted_between_listing_and_reading_is_skipped_not_a_crash(tmp_path: Path) -> None:
    """A preprocess run may drop a commit record while training opens the store."""
    from store_schema.engine.store import FeatureStore

    store = write_planted_store(str(tmp_path / "s.zarr"), subjects=2, trials=4, segments_per_trial=2)

    class ListedBeforeTheRewrite(FeatureStore):
        def committed_subjects(self, stage):  # noqa: ANN001, ANN202
            listed = super().committed_subjects(stage)
            self.uncommit(2, stage)  # the rewrite starts right after the listing
            return listed

    racing = ListedBeforeTheRewrite(store._root, store.url)
    data = StoreData.open(racing, needs_tokens=False)
    assert data.subject_numbers == [1]
    assert any(line.startswith("s02:") and "uncommitted" in line for line in data.skipped), data.skipped


def test_cpu_bf16_runs_the_step_in_bfloat16_only_when_asked(store_url: str, tmp_path: Path) -> None:
    from train.trainer import Trainer

    data = StoreData.open(store_url)
    layer = torch.nn.Linear(8, 8)
    for asked, dtype in ((False, torch.float32), (True, torch.bfloat16)):
        trainer = Trainer(small_config(store_url, cpu_bf16=asked), data, torch.device("cpu"), stream=False)
        with trainer.autocast():
            assert layer(torch.ones(2, 8)).dtype == dtype
    metrics = run_training(small_config(store_url, cpu_bf16=True, epochs=2, folds=2,
                                        model={"kind": "eeg", "eeg_tokenizer": "log_power"}),
                           tmp_path / "bf16", progress=False)
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["cpu_bf16"] is True
    history = json.loads((tmp_path / "bf16" / "folds" / "fold0.json").read_text())["history"]
    assert len(history) == 2 and all(np.isfinite(row["train_loss"]) for row in history)
    assert 0.0 <= metrics["accuracy"] <= 1.0
