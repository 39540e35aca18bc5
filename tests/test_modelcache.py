"""labkit.modelcache: one key recipe, one metadata file, one hit rule, atomic writes, energy.

The trainer here is a real (tiny, random-weight) Llama fine-tuned for a few steps with HF
Trainer through ``job.train``: the cache's own code paths, at unit-test size.
"""

from __future__ import annotations

import json
import shutil

import pytest

from labkit.errors import ParameterError
from labkit.modelcache import (
    METADATA_FILE,
    BaseModel,
    Recipe,
    base_fingerprint,
    cache_key,
    lookup,
    train_into_cache,
)

CONFIG = {"learning_rate": 1e-3, "steps": 2, "seed": 0}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A random 1-layer Llama saved as safetensors (unit-test weights only)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("base") / "tiny-llama"
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=32,
        )
    ).save_pretrained(folder, safe_serialization=True)
    return folder


def make_train_fn(base_path, calls: list, fail: bool = False):
    """A train function that fine-tunes the base for ``CONFIG['steps']`` Trainer steps."""

    def train_fn(job):
        import torch
        from transformers import LlamaForCausalLM, Trainer

        from labkit.training import training_arguments

        calls.append(job.folder)
        model = LlamaForCausalLM.from_pretrained(base_path, use_safetensors=True)
        data = [{"input_ids": torch.arange(i, i + 8) % 64, "labels": torch.arange(i, i + 8) % 64} for i in range(8)]
        args = training_arguments(
            job.scratch,
            max_steps=CONFIG["steps"],
            seed=0,
            progress=False,
            per_device_train_batch_size=4,
        )
        run = job.train(Trainer(model=model, args=args, train_dataset=data))
        model.save_pretrained(job.folder, safe_serialization=True)
        if fail:
            raise RuntimeError("killed after saving the weights")
        return {"train_loss": run["train_loss"], "steps": CONFIG["steps"]}

    return train_fn


def recipe_for(base_path, config=CONFIG) -> Recipe:
    return Recipe("unit-lm", "unit-lm-v1", config, base=BaseModel.of(str(base_path)), data_sha256="d" * 64)


def test_same_inputs_hit_and_metadata_has_everything(tiny_base):
    calls: list = []
    first = train_into_cache(recipe_for(tiny_base), make_train_fn(tiny_base, calls))
    again = train_into_cache(recipe_for(tiny_base), make_train_fn(tiny_base, calls))
    assert len(calls) == 1  # the second call was a hit: no training
    assert again == first and again.path == first.path
    assert first.name == f"labkit/unit-lm-{first.key[:12]}"
    assert first.path.name == f"unit-lm-{first.key[:12]}"
    meta = json.loads((first.path / METADATA_FILE).read_text())
    assert meta["key"] == first.key and meta["kind"] == "unit-lm"
    assert meta["config"] == CONFIG and meta["code_version"] == "unit-lm-v1"
    assert meta["base"] == {"name": str(tiny_base), "fingerprint": base_fingerprint(tiny_base)}
    assert meta["data_sha256"] == "d" * 64 and meta["created"]
    assert meta["energy"]["energy_kwh"] > 0 and meta["energy"]["tasks"] == [f"train_unit-lm-{first.key[:12]}"]
    assert meta["metrics"]["energy_kwh"] == meta["energy"]["energy_kwh"]
    assert meta["power_method"] and meta["power_method"] == meta["energy"]["power_method"]
    # the registry finds it by its labkit name; the Trainer scratch folder is gone
    from labkit.models import resolve

    assert resolve(first.name).path == first.path
    assert not any(p.name.startswith(".") for p in first.path.parent.iterdir())


def test_the_key_covers_every_part():
    parts = dict(config=CONFIG, code_version="v1", base="b" * 64, data_sha256="d" * 64)
    key = cache_key("unit-lm", **parts)
    assert len(key) == 64 and key == cache_key("unit-lm", **dict(reversed(parts.items())))
    for change in (
        dict(config={**CONFIG, "seed": 1}),
        dict(code_version="v2"),
        dict(base="c" * 64),
        dict(data_sha256="e" * 64),
        dict(base=None),
    ):
        assert cache_key("unit-lm", **{**parts, **change}) != key, change
    assert cache_key("other-lm", **parts) != key
    with pytest.raises(ParameterError, match="kind"):
        cache_key("Bad Kind", **parts)
    with pytest.raises(ParameterError, match="config"):
        cache_key("unit-lm", **{**parts, "config": {"x": object()}})


def test_changed_config_misses(tiny_base):
    calls: list = []
    first = train_into_cache(recipe_for(tiny_base), make_train_fn(tiny_base, calls))
    changed = recipe_for(tiny_base, {**CONFIG, "learning_rate": 2e-3})
    assert changed.key != first.key and lookup("unit-lm", changed.key) is None
    second = train_into_cache(changed, make_train_fn(tiny_base, calls))
    assert len(calls) == 2 and second.path != first.path
    assert lookup("unit-lm", first.key) == first  # the first model is still cached


def test_changed_base_under_the_same_folder_name_misses(tiny_base, tmp_path):
    """The false hit this module exists to prevent: new weights under an old name."""
    base = tmp_path / "models" / "my-encoder"
    shutil.copytree(tiny_base, base)
    calls: list = []
    first = train_into_cache(recipe_for(base), make_train_fn(base, calls))
    weights = base / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one weight byte changed in place; same folder, same name
    weights.write_bytes(bytes(data))
    changed = recipe_for(base)
    assert changed.base.name == first.metadata["base"]["name"]
    assert changed.key != first.key
    assert lookup("unit-lm", changed.key) is None
    second = train_into_cache(changed, make_train_fn(base, calls))
    assert len(calls) == 2 and second.path != first.path
    assert second.metadata["base"]["fingerprint"] != first.metadata["base"]["fingerprint"]


def test_same_weights_under_another_name_hit(tiny_base, tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(tiny_base, copy)
    assert recipe_for(copy).key == recipe_for(tiny_base).key


def test_a_crash_inside_training_leaves_no_folder(tiny_base):
    recipe = recipe_for(tiny_base, {**CONFIG, "seed": 7})
    calls: list = []
    with pytest.raises(RuntimeError, match="killed"):
        train_into_cache(recipe, make_train_fn(tiny_base, calls, fail=True))
    assert len(calls) == 1 and not recipe.folder.exists()
    assert list(recipe.folder.parent.iterdir()) == []  # no scratch folder either
    assert lookup("unit-lm", recipe.key) is None


def test_hit_rule_needs_metadata_weights_and_the_same_key(tiny_base):
    calls: list = []
    cached = train_into_cache(recipe_for(tiny_base), make_train_fn(tiny_base, calls))
    meta_file = cached.path / METADATA_FILE
    meta = json.loads(meta_file.read_text())
    # same 12-character folder, another full key: a miss, not a misread
    assert lookup("unit-lm", cached.key[:12] + "0" * 52) is None
    meta_file.write_text(json.dumps({**meta, "key": "x" * 64}))
    assert lookup("unit-lm", cached.key) is None
    meta_file.write_text(json.dumps(meta))
    assert lookup("unit-lm", cached.key) == cached
    (cached.path / "model.safetensors").unlink()
    assert lookup("unit-lm", cached.key) is None
    again = train_into_cache(recipe_for(tiny_base), make_train_fn(tiny_base, calls))
    assert len(calls) == 2 and (again.path / "model.safetensors").is_file()
    meta_file.unlink()
    assert lookup("unit-lm", cached.key) is None


def test_train_fn_must_measure_its_energy(tiny_base):
    def unmeasured(job):
        from transformers import LlamaForCausalLM

        LlamaForCausalLM.from_pretrained(tiny_base).save_pretrained(job.folder)
        return {}

    recipe = recipe_for(tiny_base, {**CONFIG, "seed": 3})
    with pytest.raises(RuntimeError, match="job.train"):
        train_into_cache(recipe, unmeasured)
    assert not recipe.folder.exists()


def test_base_must_be_a_model():
    with pytest.raises(ParameterError, match="base"):
        BaseModel.of(None)


@pytest.mark.slow
def test_siamese_finetune_keys_on_the_base_bytes_not_its_folder_name(tmp_path):
    """finetune_encoder used to key on the base folder's name; now a changed MiniLM under the
    same name retrains, the same one hits, and each epoch is measured in the caller's session."""
    from labkit.carbon import CarbonSession
    from labkit.embeddings.siamese import FineTuneConfig, finetune_encoder
    from labkit.models import resolve

    base = tmp_path / "all-MiniLM-L6-v2"
    shutil.copytree(resolve("all-MiniLM-L6-v2").path, base)
    q1 = [f"is drug {i} safe in pregnancy" for i in range(8)]
    q2 = [f"can I take drug {i} while pregnant" if i % 2 else f"what does drug {i} cost" for i in range(8)]
    y = [i % 2 for i in range(8)]
    cfg = FineTuneConfig(base_model=str(base), epochs=2, batch_size=4)
    with CarbonSession() as carbon:
        folder, metrics = finetune_encoder(q1, q2, y, cfg, carbon=carbon)
        tasks = [m.task for m in carbon.measurements]
        again, metrics_again = finetune_encoder(q1, q2, y, cfg, carbon=carbon)
        assert [m.task for m in carbon.measurements] == tasks  # a hit measures nothing
    assert tasks == ["epoch_1", "epoch_2"] and again == folder and metrics_again == metrics
    meta = json.loads((folder / METADATA_FILE).read_text())
    assert meta["kind"] == "siamese-st" and meta["energy"]["tasks"] == tasks
    assert meta["metrics"]["pairs"] == 8 and "base_model" not in meta["config"]
    weights = base / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    changed, _ = finetune_encoder(q1, q2, y, cfg)
    assert changed != folder and (changed / "model.safetensors").is_file()
