"""Swin token stage: weight loading (HF and timm), token equality with Hugging Face, batching,
refusals and fingerprints. Swin-tiny runs at ~10 images/s on 2 CPU cores: few images here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from pipeline.errors import TokensError, WeightsError
from pipeline.stages.tokens.extract import TokenExtractor, segment_batches, tokens_for_subject
from pipeline.stages.tokens.params import TokensParams
from pipeline.weights.swin import hf_swin_to_timm, load_backbone, timm_swin_filter
from pipeline.weights.swin_source import (
    HOW_TO_GIVE_WEIGHTS,
    MODEL_NAME,
    resolve_weights,
    weights_fingerprint,
)
from store_schema.contract.layout import CROP_SIZE

import transformers  # noqa: E402 - test-only dependency (the test extra)


def _crops(n: int, seed: int = 0) -> np.ndarray:
    """Face-sized uint8 RGB images with structure (gradients + noise), not flat noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    out = np.empty((n, 224, 224, 3), np.uint8)
    for i in range(n):
        phase = rng.uniform(0, 6.28, 3)
        base = np.stack([np.sin(6 * xx + phase[c]) * np.cos(4 * yy - phase[c]) for c in range(3)], -1)
        out[i] = np.clip(127 + 90 * base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return out


def _timm_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return timm.create_model(MODEL_NAME, pretrained=False, num_classes=0).state_dict()


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A randomly initialised HF SwinForImageClassification (swin-tiny, 7 classes) saved with
    save_pretrained, every parameter perturbed so that no tensor is trivially 0 or 1; with a
    non-ImageNet preprocessor config so the normalisation is checked too."""
    config = transformers.SwinConfig(num_labels=7)  # the class defaults are swin-tiny-patch4-window7-224
    torch.manual_seed(0)
    model = transformers.SwinForImageClassification(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    folder = tmp_path_factory.mktemp("hf-swin")
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_rescale": True, "rescale_factor": 1 / 255,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor", "size": {"height": 224, "width": 224}}))
    return folder, model


@pytest.fixture(scope="module")
def random_extractor() -> TokenExtractor:
    return TokenExtractor(weights="random:0", params=TokensParams.from_weights("random:0", batch_size=10, amp="off"))


# -- Hugging Face checkpoints ------------------------------------------------------------------


def test_hf_swin_folder_gives_the_same_tokens_as_hf_last_hidden_state(hf_folder) -> None:
    folder, hf_model = hf_folder
    crops = _crops(4)
    extractor = TokenExtractor(weights=folder, params=TokensParams.from_weights(folder, batch_size=4, amp="off"))
    ours = extractor.extract(crops, out_dtype="float32")
    pixels = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        reference = hf_model.swin(pixel_values=pixels).last_hidden_state.numpy()
    assert ours.shape == reference.shape == (4, 49, 768)
    diff = float(np.abs(ours - reference).max())
    print(f"max abs diff HF vs timm (float32): {diff:.2e}")
    assert diff <= 1e-4
    assert extractor.normalisation.mean == (0.5, 0.5, 0.5)
    assert extractor.record()["normalisation"]["origin"] == "preprocessor_config.json"
    assert extractor.record()["random_weights"] is False
    assert extractor.source.kind == "hf_folder"


def test_hf_converter_handles_transformers_4_and_5_module_names(hf_folder) -> None:
    """The saved file has transformers < 5 names (attention.self.query, intermediate.dense...,
    plus v4's persistent relative_position_index); the in-memory v5 model has q_proj, mlp.fc1,
    relative_position_bias.relative_position_bias_table. Both convert to the same timm dict."""
    from safetensors.torch import load_file

    folder, hf_model = hf_folder
    saved = load_file(str(folder / "model.safetensors"))
    assert any(".attention.self.query." in k for k in saved)
    saved["swin.encoder.layers.0.blocks.0.attention.self.relative_position_index"] = torch.zeros(49 * 49)
    in_memory = hf_model.state_dict()
    legacy, v5 = hf_swin_to_timm(saved), hf_swin_to_timm(in_memory)
    expected = _timm_state(0)
    assert set(legacy) == set(v5) == set(expected)
    for key in expected:
        assert legacy[key].shape == expected[key].shape, key
        assert torch.equal(legacy[key], v5[key]), key
    # HF merges patches at the end of stage i, timm at the start of stage i + 1
    assert torch.equal(legacy["layers.1.downsample.reduction.weight"],
                       saved["swin.encoder.layers.0.downsample.reduction.weight"])


def test_hf_keys_in_a_single_file_are_detected_and_converted(hf_folder, tmp_path: Path) -> None:
    folder, hf_model = hf_folder
    path = tmp_path / "hf_state.pth"
    torch.save({"state_dict": hf_model.swin.state_dict()}, path)  # no swin. prefix, v5 names
    model, _ = load_backbone(resolve_weights(path))
    from_folder, _ = load_backbone(resolve_weights(folder))
    for key, value in from_folder.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_hf_config_of_another_architecture_is_refused(hf_folder, tmp_path: Path) -> None:
    folder, _ = hf_folder
    for name, change, needle in [
        ("small", {"depths": [2, 2, 18, 2]}, "depths [2, 2, 18, 2] (need [2, 2, 6, 2])"),
        ("window12", {"window_size": 12, "image_size": 384}, "window_size 12 (need 7)"),
        ("v2", {"model_type": "swinv2"}, "model_type 'swinv2'"),
    ]:
        other = tmp_path / name
        other.mkdir()
        (other / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        config = json.loads((folder / "config.json").read_text()) | change
        (other / "config.json").write_text(json.dumps(config))
        with pytest.raises(WeightsError, match="Swin") as err:
            TokenExtractor(weights=other)
        assert needle in str(err.value)
        assert str(other) in str(err.value)


# -- timm checkpoints --------------------------------------------------------------------------


def test_timm_checkpoint_round_trip_safetensors_and_wrapped_pth(tmp_path: Path) -> None:
    torch.manual_seed(3)
    source = timm.create_model(MODEL_NAME, pretrained=False, num_classes=0).eval()
    state = source.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "swin.safetensors"))
    # DistributedDataParallel prefix, a classifier head and training state around it
    wrapped = {"module." + k: v for k, v in state.items()}
    wrapped |= {"module.head.fc.weight": torch.zeros(7, 768), "module.head.fc.bias": torch.zeros(7)}
    torch.save({"epoch": 3, "model": wrapped}, tmp_path / "swin.pth")
    crops = _crops(2, seed=1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    pixels = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.inference_mode():
        reference = source.forward_features(pixels).flatten(1, 2).numpy()
    for name in ("swin.safetensors", "swin.pth"):
        extractor = TokenExtractor(weights=tmp_path / name,
                                   params=TokensParams.from_weights(tmp_path / name, amp="off"))
        assert extractor.source.kind == "timm_file"
        assert extractor.normalisation.origin == "ImageNet default"
        ours = extractor.extract(crops, out_dtype="float32")
        assert float(np.abs(ours - reference).max()) <= 1e-4, name


def test_original_microsoft_layout_moves_patch_merging_to_the_next_stage() -> None:
    state = _timm_state(0)
    microsoft = {}
    for key, value in state.items():
        if ".downsample." in key:
            stage = int(key.split(".")[1])
            key = key.replace(f"layers.{stage}.downsample.", f"layers.{stage - 1}.downsample.")
        microsoft[key] = value
    microsoft["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)
    microsoft["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(49, 49)
    microsoft["head.weight"], microsoft["head.bias"] = torch.zeros(1000, 768), torch.zeros(1000)
    converted = timm_swin_filter(microsoft)
    assert set(converted) == set(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)


# -- batching ----------------------------------------------------------------------------------


def test_a_crop_gives_the_same_tokens_alone_and_in_a_batch(random_extractor: TokenExtractor) -> None:
    crops = _crops(3, seed=2)
    batched = random_extractor.extract(crops, out_dtype="float32")
    for i in range(3):
        alone = random_extractor.extract(crops[i:i + 1], out_dtype="float32")
        np.testing.assert_allclose(alone[0], batched[i], atol=1e-4, rtol=0)


def test_tokens_for_subject_reads_whole_segments_lazily_and_reports_progress(
        random_extractor: TokenExtractor) -> None:
    crops = _crops(20, seed=4).reshape(2, 10, 224, 224, 3)

    class Reader:  # stands in for a zarr.Array: shape, dtype, slicing
        shape, dtype = crops.shape, crops.dtype
        reads: list[slice] = []

        def __getitem__(self, key: slice) -> np.ndarray:
            self.reads.append(key)
            return crops[key]

    reader = Reader()
    calls: list[tuple[int, int]] = []
    arrays, extra = tokens_for_subject(crops=reader, extractor=random_extractor,
                                       progress=lambda done, total: calls.append((done, total)))
    tokens = arrays["tokens"]
    assert set(arrays) == {"tokens"}
    assert tokens.shape == (2, 10, 49, 768) and tokens.dtype == np.float16
    assert reader.reads == [slice(0, 1), slice(1, 2)]  # batch_size 10 = one segment per read
    assert calls == [(10, 20), (20, 20)]
    alone = random_extractor.extract(crops[1])
    np.testing.assert_allclose(tokens[1].astype(np.float32), alone.astype(np.float32), atol=2e-3, rtol=0)
    assert extra["random_weights"] is True and extra["weights_fingerprint"] == "random:0"
    assert extra["frames"] == 20 and extra["device"] == "cpu" and extra["compute_dtype"] == "float32"
    assert extra["frames_per_s"] > 0
    json.dumps(extra)  # small JSON metadata for the commit record


def test_tokens_for_subject_with_no_segments_returns_an_empty_array(random_extractor) -> None:
    arrays, extra = tokens_for_subject(crops=np.zeros((0, 10, 224, 224, 3), np.uint8),
                                       extractor=random_extractor)
    assert arrays["tokens"].shape == (0, 10, 49, 768)
    assert extra["frames"] == 0


def test_a_read_error_reaches_the_caller_with_its_own_type(random_extractor) -> None:
    class Broken:
        shape, dtype = (3, 10, 224, 224, 3), np.dtype(np.uint8)

        def __getitem__(self, key: slice) -> np.ndarray:
            raise OSError("store went away")

    with pytest.raises(OSError, match="store went away"):
        tokens_for_subject(crops=Broken(), extractor=random_extractor)


def test_crops_of_the_wrong_shape_or_dtype_are_refused(random_extractor) -> None:
    with pytest.raises(TokensError, match="re-run the faces stage"):
        tokens_for_subject(crops=np.zeros((1, 10, 112, 112, 3), np.uint8), extractor=random_extractor)
    with pytest.raises(TokensError, match="uint8"):
        random_extractor.extract(np.zeros((1, 224, 224, 3), np.float32))


@given(n=st.integers(0, 300), per=st.integers(0, 40))
def test_segment_batches_cover_every_segment_once_in_order(n: int, per: int) -> None:
    parts = segment_batches(n, per)
    covered = [i for part in parts for i in range(part.start, part.stop)]
    assert covered == list(range(n))
    assert all(0 < part.stop - part.start <= max(1, per) for part in parts)


# -- refusals ----------------------------------------------------------------------------------


def test_a_resnet_checkpoint_is_refused_with_key_counts(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    with pytest.raises(WeightsError) as err:
        TokenExtractor(weights=path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a Swin-tiny checkpoint")
    assert "171 missing keys, first: patch_embed.proj.weight" in message
    assert "unexpected keys, first: conv1.weight" in message
    assert "--weights random" in message


def test_a_swin_checkpoint_with_missing_keys_names_them(tmp_path: Path) -> None:
    state = _timm_state(0)
    del state["layers.0.blocks.0.attn.qkv.weight"]
    state["layers.3.blocks.1.mlp.fc2.weight"] = torch.zeros(10, 10)
    path = tmp_path / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(WeightsError) as err:
        TokenExtractor(weights=path)
    message = str(err.value)
    assert "1 missing keys, first: layers.0.blocks.0.attn.qkv.weight" in message
    assert ("1 mis-shaped tensors, first: layers.3.blocks.1.mlp.fc2.weight (10, 10) "
            "(need (768, 3072))") in message


def test_no_weights_is_refused_with_how_to_give_them() -> None:
    for make in (lambda: TokenExtractor(weights=None), lambda: TokensParams.from_weights(None),
                 lambda: weights_fingerprint("")):
        with pytest.raises(WeightsError) as err:
            make()
        assert "--weights PATH" in str(err.value) and "--weights random" in str(err.value)
    assert "--weights PATH" in HOW_TO_GIVE_WEIGHTS


def test_unusable_weight_paths_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no such file or folder"):
        weights_fingerprint(tmp_path / "nope.pth")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(WeightsError, match="not a checkpoint file"):
        weights_fingerprint(tmp_path / "notes.txt")
    with pytest.raises(WeightsError, match="needs a config.json"):
        weights_fingerprint(tmp_path)
    (tmp_path / "garbage.pth").write_bytes(b"not a pickle")
    with pytest.raises(WeightsError, match="cannot read the checkpoint"):
        TokenExtractor(weights=tmp_path / "garbage.pth")
    with pytest.raises(WeightsError, match="seed"):
        weights_fingerprint("random:abc")


def test_random_weights_are_marked_random_and_deterministic_by_seed(random_extractor) -> None:
    assert random_extractor.random_weights and random_extractor.params.random_weights
    assert random_extractor.record()["random_weights"] is True
    assert weights_fingerprint("random") == "random:0"
    first, _ = load_backbone(resolve_weights("random:1"))
    again, _ = load_backbone(resolve_weights("random:1"))
    other, _ = load_backbone(resolve_weights("random:2"))
    a, b, c = first.state_dict(), again.state_dict(), other.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["layers.0.blocks.0.attn.qkv.weight"], c["layers.0.blocks.0.attn.qkv.weight"])


# -- fingerprints and params -------------------------------------------------------------------


def test_weights_fingerprint_follows_content_not_path_or_mtime(tmp_path: Path, hf_folder) -> None:
    one, two = tmp_path / "a.pth", tmp_path / "b.pth"
    one.write_bytes(b"weights v1")
    two.write_bytes(b"weights v1")
    assert weights_fingerprint(one) == weights_fingerprint(two)
    assert weights_fingerprint(one).startswith("sha256:")
    two.write_bytes(b"weights v2")
    assert weights_fingerprint(one) != weights_fingerprint(two)

    folder, _ = hf_folder
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        (copy / name).write_bytes((folder / name).read_bytes())
    assert weights_fingerprint(copy) == weights_fingerprint(folder)
    before = weights_fingerprint(copy)
    for name in ("model.safetensors", "config.json", "preprocessor_config.json"):
        original = (copy / name).read_bytes()
        (copy / name).write_bytes(original + b" ")
        assert weights_fingerprint(copy) != before, name
        (copy / name).write_bytes(original)
    assert weights_fingerprint(copy) == before


def test_params_that_do_not_match_the_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _timm_state(0).items()}, str(path))
    params = TokensParams.from_weights(path)
    save_file({k: v.contiguous() + 1 for k, v in _timm_state(0).items()}, str(path))
    with pytest.raises(WeightsError, match="changed since"):
        TokenExtractor(weights=path, params=params)


def test_params_hash_what_changes_tokens_and_not_batch_size() -> None:
    params = TokensParams.from_weights("random:5", batch_size=8, num_threads=1)
    dumped = params.model_dump(mode="json")
    assert dumped == {"model_name": MODEL_NAME, "weights_fingerprint": "random:5",
                      "device": params.device, "amp": params.amp}
    assert params.device in ("cpu", "cuda") and params.amp in ("off", "bf16", "fp16")
    assert TokensParams.from_weights("random:5", batch_size=64).model_dump() == params.model_dump()
    with pytest.raises(ValueError, match="weights fingerprint"):
        TokensParams(weights_fingerprint="/data/swin.pth")
    with pytest.raises(ValueError):
        TokensParams(weights_fingerprint="random:0", colour="blue")  # extra=forbid
    with pytest.raises(ValueError):
        params.batch_size = 3  # frozen


def test_cuda_without_a_gpu_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    cpu = TokensParams(weights_fingerprint="random:0", device="auto", amp="bf16").resolved()
    assert (cpu.device, cpu.amp) == ("cpu", "bf16")  # asked for: bf16 autocast runs on any CPU
    with pytest.raises(TokensError, match="CUDA autocast"):
        TokensParams(weights_fingerprint="random:0", device="cpu", amp="fp16").resolved()
    with pytest.raises(TokensError, match="--device cpu"):
        TokensParams(weights_fingerprint="random:0", device="cuda").resolved()


@pytest.mark.parametrize(("flags", "native"), [
    ("fpu sse avx512f avx512_bf16 avx_vnni", True),
    ("fpu sse amx_tile amx_bf16", True),
    ("fpu sse avx2 avx512f", False),
])
def test_auto_precision_on_a_cpu_follows_its_bf16_flags(
        flags: str, native: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.stages.tokens import params as tokens

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert tokens.cpu_has_native_bf16(cpuinfo) is native
    assert tokens.cpu_has_native_bf16(tmp_path / "absent") is False
    monkeypatch.setattr(tokens, "cpu_has_native_bf16", lambda: native)
    params = TokensParams(weights_fingerprint="random:0", device="cpu").resolved()
    assert params.amp == ("bf16" if native else "off")


def test_bf16_tokens_on_a_cpu_stay_close_to_float32_and_fingerprint_apart() -> None:
    """bf16 autocast changes the numbers a little (stored as float16 anyway) and the fingerprint."""
    crops = np.random.default_rng(3).integers(0, 256, (4, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    fp32 = TokenExtractor(weights="random:0", params=TokensParams.from_weights(
        "random:0", device="cpu", amp="off", batch_size=4))
    bf16 = TokenExtractor(weights="random:0", params=TokensParams.from_weights(
        "random:0", device="cpu", amp="bf16", batch_size=4))
    a = np.concatenate(list(fp32.extract_batches(iter([crops])))).astype(np.float32)
    b = np.concatenate(list(bf16.extract_batches(iter([crops])))).astype(np.float32)
    relative = np.linalg.norm(a - b) / np.linalg.norm(a)
    assert 0 < relative < 0.03, relative  # measured 1.1 % on this CPU; 3 % is the stated tolerance
    assert fp32.params.model_dump() != bf16.params.model_dump()


# -- weights by name: hf-hub specs and aliases, from huggingface_hub's cache, offline --------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def write_hub_cache(cache: Path, repo: str, files: dict[str, bytes], *, commit: str = COMMIT,
                    ref: str = "main") -> Path:
    """A repo in huggingface_hub's cache layout, as its downloads leave it: content in
    ``blobs/<sha256>``, ``snapshots/<commit>/<name>`` linked to it, ``refs/<ref>`` naming the commit."""
    import hashlib

    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty Hugging Face cache of this test's own, and no socket can connect anywhere."""
    import socket

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - any signature
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return cache


def test_an_hf_hub_spec_reads_the_cache_offline_and_gives_the_folders_tokens(hf_folder, offline: Path) -> None:
    folder, _ = hf_folder
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    write_hub_cache(offline, "someorg/swin-face", files)
    crops = _crops(2, seed=4)
    by_path = TokenExtractor(weights=folder, params=TokensParams.from_weights(folder, amp="off"))
    for spec in ("hf-hub:someorg/swin-face", f"hf-hub:someorg/swin-face@{COMMIT}",
                 "hf-hub:someorg/swin-face@main"):
        by_name = TokenExtractor(weights=spec, params=TokensParams.from_weights(spec, amp="off"))
        assert by_name.source.fingerprint == by_path.source.fingerprint  # same files: no recompute
        assert np.array_equal(by_name.extract(crops, out_dtype="float32"),
                              by_path.extract(crops, out_dtype="float32"))
        record = by_name.record()["weights"]
        assert (record["spec"], record["repo"], record["revision"], record["kind"]) == (
            spec, "someorg/swin-face", COMMIT, "hf_folder")
        assert {f["name"]: f["sha256"] for f in record["files"]}["model.safetensors"] == \
            "sha256:" + __import__("hashlib").sha256(files["model.safetensors"]).hexdigest()
    assert by_path.record()["weights"]["repo"] is None


def test_a_repo_or_revision_missing_from_the_cache_is_one_line_with_the_command_that_fetches_it(
        offline: Path) -> None:
    with pytest.raises(WeightsError) as missing:
        resolve_weights("hf-hub:someorg/absent")
    message = str(missing.value)
    assert "\n" not in message and "someorg/absent" in message and "revision main" in message
    assert "`hf download someorg/absent`" in message and str(offline) in message
    write_hub_cache(offline, "someorg/present", {"config.json": b"{}"})
    with pytest.raises(WeightsError) as other_revision:
        resolve_weights("hf-hub:someorg/present@v2")
    assert "revision v2" in str(other_revision.value)
    assert "`hf download someorg/present --revision v2`" in str(other_revision.value)
    with pytest.raises(WeightsError, match="expected hf-hub:ORG/NAME"):
        resolve_weights("hf-hub:no-org")


def test_the_aliases_name_the_papers_two_starting_points(offline: Path) -> None:
    from pipeline.weights.swin import check_weights
    from pipeline.weights.swin_source import hub_spec

    assert hub_spec("imagenet").repo == "timm/swin_tiny_patch4_window7_224.ms_in1k"
    assert hub_spec("face-emotion").repo == (
        "MahmoudWSegni/swin-tiny-patch4-window7-224-finetuned-face-emotion-v12")
    # timm's hub layout: config.json with `architecture`, the classifier of 1000 classes kept
    state = {k: v.contiguous() for k, v in _timm_state(5).items()}
    state |= {"head.fc.weight": torch.zeros(1000, 768), "head.fc.bias": torch.zeros(1000)}
    weights = tmp = offline.parent / "timm.safetensors"
    save_file(state, str(tmp))
    config = {"architecture": MODEL_NAME, "num_classes": 1000,
              "pretrained_cfg": {"tag": "ms_in1k", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
    write_hub_cache(offline, "timm/swin_tiny_patch4_window7_224.ms_in1k",
                    {"config.json": json.dumps(config).encode(), "model.safetensors": weights.read_bytes()})
    source = check_weights("imagenet")
    assert (source.kind, source.spec, source.repo) == ("timm_folder", "imagenet",
                                                       "timm/swin_tiny_patch4_window7_224.ms_in1k")
    with pytest.raises(WeightsError, match="MahmoudWSegni/swin-tiny-patch4-window7-224-finetuned"):
        resolve_weights("face-emotion")


@pytest.mark.parametrize(("config", "named"), [
    ({"model_type": "swinv2"}, "model_type 'swinv2'"),
    ({"model_type": "vit", "hidden_size": 768}, "model_type 'vit'"),
    ({"model_type": "swin", "embed_dim": 128, "depths": [2, 2, 18, 2]}, "embed_dim 128"),
    ({"architecture": "swin_base_patch4_window7_224"}, "architecture 'swin_base_patch4_window7_224'"),
])
def test_a_hub_repo_of_another_architecture_is_refused_naming_what_was_found(
        offline: Path, config: dict, named: str) -> None:
    from pipeline.weights.swin import check_weights

    write_hub_cache(offline, "someorg/not-swin-tiny", {
        "config.json": json.dumps(config).encode(), "model.safetensors": b"not read: refused before"})
    with pytest.raises(WeightsError) as refused:
        check_weights("hf-hub:someorg/not-swin-tiny")
    assert named in str(refused.value)
