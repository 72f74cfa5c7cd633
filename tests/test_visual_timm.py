"""The ``timm`` visual extractor with tiny randomly initialised timm models saved as local checkpoints.

No real image weights exist on the test machines; what is checked is the path users take offline (a local
checkpoint), the refusals (random weights, an unreachable hub, a checkpoint of another model), the
preprocessing and the pooling.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import timm
import torch

from extractors import get_extractor
from extractors.base import ItemError
from extractors.faces import face_crops
from extractors.visual_timm import TimmConfig, TimmExtractor
from mmemolr.config import ConfigError, from_dict
from mmemolr.corpus.model import Utterance

MODEL = "test_vit"  # timm's 0.3 M-parameter ViT for tests: 160x160 input, 64-d features, fixed input size


def utt(path, uid: str = "u0") -> Utterance:
    return Utterance(id=uid, dialogue_id="d0", index=0, speaker="A", text="", label="neutral", split="train",
                     video_path=None if path is None else str(path))


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model(MODEL, pretrained=False).eval()  # with its classifier, as checkpoints are saved


@pytest.fixture(scope="module")
def checkpoints(reference, tmp_path_factory) -> dict[str, str]:
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    state = reference.state_dict()
    save_file(state, str(folder / "test_vit.safetensors"))
    torch.save(state, folder / "test_vit.pth")
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "wrapped.pt")
    hub = folder / "hub-download"
    hub.mkdir()
    save_file(state, str(hub / "model.safetensors"))
    return {"safetensors": str(folder / "test_vit.safetensors"), "pth": str(folder / "test_vit.pth"),
            "wrapped": str(folder / "wrapped.pt"), "folder": str(hub)}


@pytest.fixture(scope="module")
def extractor(checkpoints) -> TimmExtractor:
    return TimmExtractor(TimmConfig(model=MODEL, checkpoint=checkpoints["safetensors"]))


# --- weights --------------------------------------------------------------------------------------------

def test_random_weights_are_refused_unless_asked():
    with pytest.raises(ValueError, match="allow_random_weights") as err:
        TimmExtractor(TimmConfig(model=MODEL, pretrained=False)).feature_dim()
    assert "checkpoint" in str(err.value) and repr(MODEL) in str(err.value)


def test_offline_hub_fails_with_a_clear_message(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never wait on the network
    with pytest.raises(ValueError) as err:
        TimmExtractor(TimmConfig(model=MODEL)).feature_dim()  # pretrained=True is the default
    message = str(err.value)
    assert repr(MODEL) in message and "checkpoint=" in message and "timm/test_vit.r160_in1k" in message


def test_unknown_model_and_tag():
    with pytest.raises(ValueError, match="did you mean.*resnet18"):
        TimmExtractor(TimmConfig(model="resnt18", pretrained=False, allow_random_weights=True)).feature_dim()
    with pytest.raises(ValueError, match="unknown pretrained tag.*resnet18.a1_in1k"):
        TimmExtractor(TimmConfig(model="resnet18.no_such_tag")).feature_dim()


def test_checkpoint_formats_load_the_same_weights(checkpoints, reference):
    expected = reference.state_dict()
    for path in checkpoints.values():
        loaded = TimmExtractor(TimmConfig(model=MODEL, checkpoint=path))._load().state_dict()
        assert set(loaded) == set(expected) - {"head.weight", "head.bias"}  # num_classes=0: no classifier
        for name, tensor in loaded.items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=0)


def test_checkpoint_of_another_model_is_refused(checkpoints):
    with pytest.raises(ValueError, match="does not fit timm model 'test_resnet'.*missing"):
        TimmExtractor(TimmConfig(model="test_resnet", checkpoint=checkpoints["pth"])).feature_dim()
    # same parameter names, other widths
    with pytest.raises(ValueError, match="does not fit timm model 'test_vit3'.*size mismatch for pos_embed"):
        TimmExtractor(TimmConfig(model="test_vit3", checkpoint=checkpoints["pth"])).feature_dim()


def test_unsafe_or_broken_checkpoints(tmp_path, reference):
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": reference.state_dict(), "optimizer": ConfigError("arbitrary object")}, pickled)
    with pytest.raises(ValueError, match="weights_only=True"):
        TimmExtractor(TimmConfig(model=MODEL, checkpoint=str(pickled))).feature_dim()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        TimmExtractor(TimmConfig(model=MODEL, checkpoint=str(broken))).feature_dim()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TimmExtractor(TimmConfig(model=MODEL, checkpoint=str(tmp_path / "nope.pth"))).feature_dim()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        TimmExtractor(TimmConfig(model=MODEL, checkpoint=str(tmp_path))).feature_dim()


def test_allowed_random_weights_are_seeded_and_labelled():
    a = TimmExtractor(TimmConfig(model=MODEL, pretrained=False, allow_random_weights=True))
    b = TimmExtractor(TimmConfig(model=MODEL, pretrained=False, allow_random_weights=True))
    c = TimmExtractor(TimmConfig(model=MODEL, pretrained=False, allow_random_weights=True, seed=1))
    state = torch.random.get_rng_state()
    pa, pb, pc = a.provenance(), b.provenance(), c.provenance()
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone
    assert pa["weights"] == "random" and pa["pretrained_tag"] == "random-init"
    assert pa["weights_sha256"] == pb["weights_sha256"] != pc["weights_sha256"]


# --- features -------------------------------------------------------------------------------------------

def test_dimension_comes_from_the_model(extractor, checkpoints):
    assert extractor.embed_dim() == 64 and extractor.feature_dim() == 64
    three = TimmExtractor(TimmConfig(model=MODEL, checkpoint=checkpoints["pth"], pooling=["mean", "std", "max"]))
    assert three.feature_dim() == 3 * 64
    # a model whose pooled output (its pre-logits head) is wider than num_features
    mamba = TimmExtractor(TimmConfig(model="test_mambaout", pretrained=False, allow_random_weights=True))
    assert mamba._load().num_features == 64 and mamba.feature_dim() == 256


def test_preprocessing_matches_the_pretrained_config(extractor, reference, media_dir):
    crops = face_crops(utt(media_dir / "single_face.jpg"), extractor.config, extractor.detector, (160, 160))
    assert len(crops.crops) == 1 and crops.crops[0].shape == (160, 160, 3)
    cfg = reference.pretrained_cfg
    x = torch.from_numpy(crops.crops[0]).permute(2, 0, 1).float()[None] / 255
    x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)[0].numpy()
    np.testing.assert_allclose(extractor.embed(crops.crops)[0], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(extractor.extract_batch([utt(media_dir / "single_face.jpg")], None)[0], expected,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["single_face.mp4", "carphone_pristine.mp4", "multi_face.jpg"])
def test_face_media_give_finite_vectors(extractor, media_dir, name):
    [vector] = extractor.extract_batch([utt(media_dir / name)], None)
    assert isinstance(vector, np.ndarray) and vector.shape == (64,) and np.isfinite(vector).all()


def test_mixed_batch_pools_per_utterance(checkpoints, media_dir, tmp_path):
    # forward_batch 3 splits the crops of several utterances across forward passes
    ex = TimmExtractor(TimmConfig(model=MODEL, checkpoint=checkpoints["pth"], pooling=["mean", "max"],
                                  forward_batch=3, io_threads=3, fps=1.0))
    items = [utt(media_dir / "face_noface.mov", "a"), utt(media_dir / "no_face.mp4", "b"),
             utt(tmp_path / "gone.mp4", "c"), utt(media_dir / "single_face.mp4", "d")]
    results = ex.extract_batch(items, None)
    assert [r.kind if isinstance(r, ItemError) else "ok" for r in results] == ["ok", "no_face", "missing", "ok"]
    for index in (0, 3):
        crops = face_crops(items[index], ex.config, ex.detector, (160, 160))
        embeddings = ex.embed(crops.crops)
        expected = np.concatenate([embeddings.mean(axis=0), embeddings.max(axis=0)])
        np.testing.assert_allclose(results[index], expected, rtol=1e-4, atol=1e-5)
        if index == 0:  # the face leaves the frame: only the frames with a face count
            assert 0 < crops.frames_with_face < crops.frames_sampled


def test_crop_size(checkpoints):
    with pytest.raises(ValueError, match="only takes 160x160"):
        TimmExtractor(TimmConfig(model=MODEL, checkpoint=checkpoints["pth"], crop_size=96)).feature_dim()
    resnet = TimmExtractor(TimmConfig(model="test_resnet", pretrained=False, allow_random_weights=True, crop_size=96))
    assert resnet.feature_dim() == 96 and resnet.input_hw == (96, 96)


def test_cuda_request_without_a_gpu(checkpoints):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        TimmExtractor(TimmConfig(model=MODEL, checkpoint=checkpoints["pth"]), device="cuda").feature_dim()


def test_registry_config_and_provenance(extractor, checkpoints):
    assert get_extractor("timm") is TimmExtractor and not TimmExtractor.cpu_parallel
    assert TimmExtractor(TimmConfig(model="vit_base_patch16_224.augreg_in21k")).default_output_name() == \
        "visual-timm-vit_base_patch16_224.augreg_in21k"
    prov = extractor.provenance()
    assert prov["model_id"] == MODEL and prov["weights"] == "checkpoint" and prov["pretrained_tag"] == "r160_in1k"
    assert prov["weights_sha256_of"] == "file" and len(prov["weights_sha256"]) == 64
    assert prov["input_size"] == [160, 160] and prov["mean"] == [0.5, 0.5, 0.5]
    assert prov["versions"]["timm"] == timm.__version__ and prov["versions"]["opencv"] == cv2.__version__
    with pytest.raises(ConfigError, match="forward_batch"):
        from_dict(TimmConfig, {"forward_batch": 0})
    config = from_dict(TimmConfig, {"model": MODEL, "checkpoint": checkpoints["pth"], "pooling": "mean,std"})
    assert config.pooling == ["mean", "std"] and config.checkpoint == checkpoints["pth"]


def test_extract_cli_with_a_local_checkpoint(checkpoints, media_dir, tmp_path, capsys):
    """`mmemolr extract --extractor timm --model test_vit checkpoint=...` on a small manifest corpus."""
    from mmemolr.cli.main import main
    from mmemolr.store import read_features

    manifest = tmp_path / "manifest.csv"
    lines = ["dialogue_id,utterance_index,speaker,text,label,split,video_path"]
    for i, name in enumerate(["single_face.jpg", "no_face.mp4", "multi_face.jpg"]):
        lines.append(f"d0,{i},{'AB'[i % 2]},line {i},{'joy' if i % 2 else 'neutral'},train,{media_dir / name}")
    manifest.write_text("\n".join(lines) + "\n")
    folder = tmp_path / "features" / "vis"
    assert main(["corpus", "prepare", "--corpus", "manifest", "--root", str(manifest), "--out", str(folder)]) == 0
    code = main(["extract", "--corpus", str(folder), "--extractor", "timm", "--model", MODEL, "--no-progress",
                 "--max-failures", "1", f"checkpoint={checkpoints['safetensors']}", "pooling=mean,max"])
    assert code == 0, capsys.readouterr()
    features = read_features(folder / f"visual-timm-{MODEL}.h5")
    assert int(features.attrs["dim"]) == 128 and features.attrs["model_id"] == MODEL
    assert features.available.tolist() == [True, False, True]
    assert [(e[0], e[1]) for e in features.errors] == [("d0_u1", "no_face")]
