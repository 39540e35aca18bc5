"""labkit.device: one device rule, mixed precision, and that every loader and trainer follows it.

No GPU here: CUDA is faked (``torch.cuda.is_available`` / ``is_bf16_supported`` -> True) and
``Module.to`` is recorded instead of run, so these tests check where labkit *would* place each
model, without moving a tensor. Tiny random-weight models, for unit tests only.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

from labkit import device as dev
from labkit.errors import ParameterError

LABKIT = Path(__file__).resolve().parents[1] / "labkit"


@pytest.fixture
def clean_env(monkeypatch):
    """Start from no device choice; whatever a test (or begin()) sets is undone afterwards."""
    monkeypatch.setenv(dev.ENV, "")
    monkeypatch.setenv(dev.MIXED_PRECISION_ENV, "")
    return monkeypatch


@pytest.fixture
def fake_cuda(clean_env):
    clean_env.setattr(torch.cuda, "is_available", lambda: True)
    clean_env.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    clean_env.setattr(torch.cuda, "device_count", lambda: 1)
    clean_env.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Fake GPU")
    return clean_env


@pytest.fixture
def placements(fake_cuda):
    """Record the device of every ``Module.to`` call (the model stays on the CPU)."""
    seen: list[str] = []

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args else None)
        if target is not None and not isinstance(target, torch.dtype):
            seen.append(str(target))
        return self

    fake_cuda.setattr(torch.nn.Module, "to", to)
    return seen


# --- the rule ---------------------------------------------------------------------------


def test_auto_is_cpu_here_and_cuda_with_bf16_when_there_is_one(clean_env, monkeypatch):
    if not torch.cuda.is_available():
        assert dev.resolve_device() == "cpu" == dev.resolve_device("auto")
        assert dev.compute_dtype("cpu") == torch.float32
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert dev.resolve_device() == "cuda"
    assert dev.compute_dtype("cuda") == torch.bfloat16
    assert dev.compute_dtype("cuda", mixed_precision=False) == torch.float32
    monkeypatch.setenv(dev.MIXED_PRECISION_ENV, "0")
    assert dev.compute_dtype("cuda") == torch.float32 and not dev.mixed_precision_enabled()
    monkeypatch.setenv(dev.ENV, "cpu")  # $LABKIT_DEVICE beats CUDA; an argument beats both
    assert dev.resolve_device() == "cpu" and dev.resolve_device("cuda") == "cuda"


def test_cuda_without_bf16_stays_float32(fake_cuda):
    fake_cuda.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert dev.compute_dtype(dev.resolve_device()) == torch.float32


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cpu:1", "gpu"])
def test_bad_device_is_one_parameter_error(clean_env, bad):
    with pytest.raises(ParameterError, match=r"device .*`device`"):
        dev.resolve_device(bad)
    clean_env.setenv(dev.ENV, bad)
    with pytest.raises(ParameterError, match=r"LABKIT_DEVICE"):
        dev.resolve_device()


def test_cuda_asked_for_without_cuda_says_so(clean_env, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match="no CUDA device"):
        dev.resolve_device("cuda")


def test_mixed_precision_values(clean_env):
    assert dev.parse_mixed_precision(None) is True
    assert dev.parse_mixed_precision(False) is False and dev.parse_mixed_precision("off") is False
    with pytest.raises(ParameterError, match="mixed_precision"):
        dev.parse_mixed_precision("sometimes")
    clean_env.setenv(dev.MIXED_PRECISION_ENV, "maybe")
    with pytest.raises(ParameterError, match="LABKIT_MIXED_PRECISION"):
        dev.mixed_precision_enabled()


def test_describe_names_device_dtype_and_precision(fake_cuda):
    assert dev.describe() == {
        "device": "cuda",
        "name": "Fake GPU",
        "dtype": "bfloat16",
        "mixed_precision": True,
    }
    assert dev.describe("cpu")["dtype"] == "float32"
    assert dev.describe("cuda", mixed_precision=False)["mixed_precision"] is False


# --- begin() applies the choice package-wide ------------------------------------------------

PROFILES = {"smoke": {"n": 1}, "default": {"n": 2}, "paper": {"n": 3}}


def test_begin_sets_the_device_for_the_kernel_and_the_record(fake_cuda):
    from labkit import notebook, records

    cfg, record = notebook.begin("unit_device", PROFILES, "smoke", 0, device=None, mixed_precision=False, n=None)
    assert (cfg["device"], cfg["dtype"], cfg["n"]) == ("cuda", "float32", 1)
    assert dev.resolve_device() == "cuda" and not dev.mixed_precision_enabled()
    assert record.to_dict()["device"] == {
        "device": "cuda",
        "name": "Fake GPU",
        "dtype": "float32",
        "mixed_precision": False,
    }
    cfg, record = notebook.begin("unit_device", PROFILES, "smoke", 0, device="cpu")
    assert (cfg["device"], cfg["dtype"]) == ("cpu", "float32")
    import os

    assert os.environ[dev.ENV] == "cpu"
    assert records.device_line(record.to_dict()) == "cpu (CPU, float32)"


@pytest.mark.parametrize(
    "kwargs, names",
    [({"device": "tpu"}, "device"), ({"mixed_precision": "often"}, "mixed_precision")],
)
def test_begin_rejects_bad_device_parameters_before_any_work(clean_env, kwargs, names):
    from labkit import notebook

    with pytest.raises(ParameterError, match=names):
        notebook.begin("unit_device", PROFILES, "smoke", 0, **kwargs)


# --- training asks for bf16 on CUDA, the CPU otherwise ------------------------------------


def _args(**kwargs):
    from labkit.training import training_arguments

    return training_arguments(Path("unused"), seed=0, progress=False, max_steps=2, args_class=lambda **kw: kw, **kwargs)


def test_training_arguments_follow_the_device_rule(fake_cuda):
    args = _args()
    assert args["bf16"] is True and args["use_cpu"] is False
    fake_cuda.setenv(dev.MIXED_PRECISION_ENV, "0")
    assert _args()["bf16"] is False
    fake_cuda.setenv(dev.ENV, "cpu")
    assert _args()["use_cpu"] is True and _args()["bf16"] is False


def test_training_arguments_on_this_cpu_are_real_trainer_arguments(clean_env, tmp_path):
    from labkit.training import training_arguments

    clean_env.setenv(dev.ENV, "cpu")
    args = training_arguments(tmp_path, seed=0, progress=False, max_steps=2)
    assert args.use_cpu and not args.bf16 and args.device.type == "cpu"


# --- every loader places its model on the resolved device --------------------------------


def _tiny_causal_lm(folder: Path) -> Path:
    """A random 1-layer Llama plus a word-level tokenizer, saved as safetensors."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<unk>", "<eos>", "a", "b", "c"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    ).save_pretrained(folder)
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=32,
        )
    ).save_pretrained(folder)
    return folder


def test_causal_lm_loaders_place_the_model_on_cuda(placements, tmp_path):
    from labkit.lm import load_causal_lm
    from labkit.lm.train import TinyLMConfig, TrainedLM

    folder = _tiny_causal_lm(tmp_path / "lm")
    model, _ = load_causal_lm(str(folder))
    assert placements[-1] == "cuda"
    TrainedLM("labkit/x", folder, TinyLMConfig()).load()
    assert placements[-1] == "cuda"
    load_causal_lm(str(folder), dtype="auto")  # measurement-only loads may compute in bf16
    assert placements[-1] == "cuda"


def test_causal_lm_dtype_auto_is_the_compute_dtype(fake_cuda, tmp_path):
    casts = []
    fake_cuda.setattr(torch.nn.Module, "to", lambda self, *a, **k: casts.append(k.get("dtype")) or self)
    from labkit.lm import load_causal_lm

    folder = _tiny_causal_lm(tmp_path / "lm")
    load_causal_lm(str(folder), dtype="auto")
    load_causal_lm(str(folder))  # training loads keep float32 master weights
    assert casts == [torch.bfloat16, None]


def test_anchor_setup_and_anchored_models_load_on_the_rule(fake_cuda, tmp_path):
    """``anchor.study.setup_models`` and ``AnchoredLM.load`` call ``load_causal_lm`` with no
    device (or ``"auto"``), so they follow the rule; checked on the calls they make."""
    import inspect

    import labkit.lm
    from labkit.anchor import study
    from labkit.anchor.training import AnchoredLM
    from labkit.lm.load import load_causal_lm

    assert inspect.signature(load_causal_lm).parameters["device"].default == "auto"
    assert inspect.signature(AnchoredLM.load).parameters["device"].default == "auto"
    import labkit.anchor.training

    calls = []
    for module in (labkit.lm.load, labkit.anchor.training):  # the name is bound where imported
        fake_cuda.setattr(module, "load_causal_lm", lambda name, device="auto", dtype=None: calls.append(device))
    AnchoredLM.load(type("A", (), {"path": tmp_path})())
    assert calls == ["auto"]
    for call in ast.walk(ast.parse(inspect.getsource(study))):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "load_causal_lm":
            device = next((k.value for k in call.keywords if k.arg == "device"), None)
            assert device is None or getattr(device, "value", None) != "cpu"


def test_sentence_transformers_load_on_cuda(fake_cuda):
    import sentence_transformers

    from labkit import models

    seen = {}

    class Recorder:
        def __init__(self, path, device=None, **kwargs):
            seen["device"] = device

    fake_cuda.setattr(sentence_transformers, "SentenceTransformer", Recorder)
    try:
        models.resolve(models.MINILM)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"all-MiniLM-L6-v2 not available offline ({exc})")
    models.load_sentence_transformer()
    assert seen["device"] == "cuda"


def test_hf_generator_places_its_model_on_cuda(placements, tmp_path):
    from labkit.summarize.generative import HFGenerator

    folder = _tiny_causal_lm(tmp_path / "lm")
    gen = HFGenerator(str(folder), max_new_tokens=2)
    assert gen.device == "cuda" and placements[-1] == "cuda"


def test_encoder_embedder_places_its_model_on_cuda(placements, tmp_path):
    from transformers import BertConfig, BertModel

    from labkit.embedders.local_providers import PooledEncoderEmbedder

    folder = _tiny_causal_lm(tmp_path / "enc")  # reuse its tokenizer; replace the weights
    for f in folder.glob("*.safetensors"):
        f.unlink()
    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=5,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
        )
    ).save_pretrained(folder)
    (folder / "config.json").write_text(
        json.dumps({**json.loads((folder / "config.json").read_text()), "model_type": "bert"})
    )
    vectors = PooledEncoderEmbedder(str(folder), "mean", cache=False)._embed_batch(["a b", "c"])
    assert placements[-1] == "cuda" and vectors.shape == (2, 16)


def test_siamese_head_trains_on_the_rule(clean_env):
    """The head follows the rule too (CPU here: nothing is faked, it really trains)."""
    import numpy as np

    from labkit.embeddings.siamese import HeadConfig, train_head

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    split = np.array(["train"] * 30 + ["val"] * 10)
    out = train_head(a, b, rng.integers(0, 2, 40), split, HeadConfig(max_epochs=2, hidden=8, out=4))
    assert out.scores.shape == (40,) and all(e["seconds"] >= 0 for e in out.epochs)
    with pytest.raises(ParameterError, match="device"):
        train_head(a, b, np.zeros(40), split, device="tpu")


# --- nothing in labkit defaults to the CPU -------------------------------------------------

# Known exceptions in files other helpers own, reported to them (remove each entry when it is
# fixed: default the parameter to None and resolve it with labkit.device.resolve_device, or take
# the device of the tensor/model at hand). Anything new fails this test.
KNOWN_CPU_DEFAULTS: set[tuple[str, str]] = set()


def test_no_function_defaults_its_device_to_cpu():
    found = set()
    for path in LABKIT.rglob("*.py"):
        rel = path.relative_to(LABKIT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.args + node.args.kwonlyargs
                defaults = (
                    [None] * (len(node.args.args) - len(node.args.defaults))
                    + list(node.args.defaults)
                    + list(node.args.kw_defaults)
                )
                for arg, default in zip(args, defaults):
                    if "device" in arg.arg and isinstance(default, ast.Constant) and default.value == "cpu":
                        found.add((rel, node.name))
            elif isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "device" and isinstance(kw.value, ast.Constant) and kw.value.value == "cpu":
                        found.add((rel, f"call at line {node.lineno}"))
    assert found - KNOWN_CPU_DEFAULTS == set(), (
        f"hard-coded 'cpu' device outside the device rule: {sorted(found - KNOWN_CPU_DEFAULTS)}"
    )


# --- the run record: device entry, portable data and parameters ---------------------------


def portable_home(rest: str) -> str:
    """What ``st:$HOME/<rest>`` becomes (``<home>``, unless $HOME lies in the checkout or /tmp)."""
    from labkit.records import portable

    return portable("st:" + str(Path.home() / rest)) if str(Path.home()).startswith("/tmp") else "st:<home>/" + rest


def test_record_is_portable(clean_env, tmp_path):
    from labkit import records
    from labkit.data import Resolved
    from labkit.paths import project_root

    mine = tmp_path / "mine.csv"
    used = {
        "mqp": Resolved("mqp", tmp_path / "mirror" / "mqp", "mirror", {"mqp.csv": "94ec"}),
        "own": Resolved("own", mine, "path", {"mine.csv": "ab"}, False),
    }
    home_model = str(Path.home() / "models" / "m")
    run = records.RunRecord(
        "unit_portable",
        {
            "pairs_csv": str(mine),
            "models": [f"st:{home_model}", "st:all-MiniLM-L6-v2"],
            "notes": str(project_root() / "data" / "x.jsonl"),
            "n": 3,
        },
    )
    run.note_data(used)
    record = run.to_dict()
    assert record["data"]["mqp"] == {
        "origin": "mirror",
        "source": "mirror",
        "files": ["mqp.csv"],
        "sha256": {"mqp.csv": "94ec"},
        "verified_against_registry": True,
    }
    assert record["data"]["own"]["source"] == "user path"
    params = record["parameters"]
    assert params["pairs_csv"].startswith("<tmp>/") and params["pairs_csv"].endswith("/mine.csv")
    assert params["models"] == [portable_home("models/m"), "st:all-MiniLM-L6-v2"]
    assert params["notes"] == "<project>/data/x.jsonl" and params["n"] == 3
    text = json.dumps(record)
    for absolute in (str(tmp_path), str(project_root()), str(Path.home()) + "/"):
        assert absolute not in text
    assert record["device"]["device"] == "cpu" or torch.cuda.is_available()


def test_portable_leaves_other_values_alone():
    from labkit.records import portable

    assert portable({"a": "/usr/share/x", "b": 1.5, "c": None, "d": "cpu"}) == {
        "a": "/usr/share/x",
        "b": 1.5,
        "c": None,
        "d": "cpu",
    }
    home = str(Path.home())
    assert portable(home + "fs/x") == home + "fs/x"  # a sibling that only starts like $HOME


def test_torch_and_process_pools_keep_to_the_threads_labkit_run_gives_a_kernel(monkeypatch):
    import os

    from labkit import device
    from labkit.training import use_torch_threads

    before = torch.get_num_threads()
    monkeypatch.setenv(device.THREADS_ENV, "1")
    try:
        use_torch_threads()
        assert torch.get_num_threads() == 1 and device.cpu_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv(device.THREADS_ENV, "zero")  # not a count: every core
    assert device.cpu_threads() == (os.cpu_count() or 1)
