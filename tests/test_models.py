"""Model registry: offline MiniLM, local folders, safetensors only, clear errors."""

import pytest

from labkit import models
from labkit.device import resolve_device
from labkit.errors import ModelError


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_minilm_resolves_offline_to_safetensors(name):
    ref = models.resolve(name)
    assert (ref.path / "model.safetensors").is_file()
    assert ref.source in ("pip package", "hf cache")


def test_minilm_loads_and_embeds_for_real():
    model = models.load_sentence_transformer("all-MiniLM-L6-v2", device="cpu")
    vectors = model.encode(
        ["chest pain after running", "pain in the chest when jogging", "how to bake bread"],
        normalize_embeddings=True,
    )
    assert vectors.shape == (3, 384)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_unknown_model_lists_what_is_available_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as info:
        models.resolve("no-such-org/no-such-model")
    assert "'no-such-org/no-such-model' is not available" in str(info.value)
    assert "all-MiniLM-L6-v2" in str(info.value)


def test_pickled_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(ModelError, match="safetensors only"):
        models.resolve(str(tmp_path))


def test_missing_labkit_model_says_which_notebook_makes_it():
    with pytest.raises(ModelError, match="labkit model 'labkit/never-trained'"):
        models.resolve("labkit/never-trained")


def test_empty_name_and_bad_device():
    with pytest.raises(ModelError):
        models.resolve("")
    import torch

    if not torch.cuda.is_available():
        from labkit.errors import ParameterError

        with pytest.raises(ParameterError, match="torch sees no CUDA device"):
            resolve_device("cuda")
        with pytest.raises(ParameterError, match="not one of auto"):
            resolve_device("tpu")
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
