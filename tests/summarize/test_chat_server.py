"""The zero-shot chat system end to end through a real OpenAI-compatible server.

``transformers serve`` (Hugging Face's own server, the ``transformers[serving]`` extra) runs on
127.0.0.1 over a tiny random-weight Llama saved to a temporary folder, started by the same
function a user's ``python -m labkit.summarize.serve`` uses. No network, no hub. The scripted
loopback stub (conftest) is kept only for what a real server will not do on demand: 429s,
5xx, timeouts, malformed answers, and recording what the client sent.
"""

from __future__ import annotations

import pytest

from labkit.records import RunRecord
from labkit.summarize import serve
from labkit.summarize.data import Item
from labkit.summarize.endpoint import ChatEndpoint

ok, why = serve.available()
pytestmark = pytest.mark.skipif(not ok, reason=why or "transformers serve is available")

CHARS = sorted(set(" abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;?!'-\n"))


def _tiny_model(folder):
    """A 1-layer random Llama with a character tokenizer (unit-test scale, never the product)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    vocab = {t: i for i, t in enumerate(["<pad>", "</s>", "<unk>"] + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=4096,
            eos_token_id=1,
            pad_token_id=0,
            bos_token_id=1,
        )
    )
    model.save_pretrained(folder)
    hf.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``(base_url, model folder)`` of a running ``transformers serve``; stopped afterwards."""
    root = tmp_path_factory.mktemp("served")
    folder = serve.servable_folder(_tiny_model(root / "base"), root / "served")
    process, base_url = serve.start(folder, timeout_s=120)
    yield base_url, str(folder)
    process.terminate()
    process.wait(20)


def _items(n=3):
    return [
        Item(
            f"m{i}",
            f"Alice: we discussed topic {i} at length today.\nBob: the budget for topic {i} is fine.",
            f"They discussed topic {i}.",
            source=f"meeting-{i}",
        )
        for i in range(n)
    ]


def make(server, **kwargs):
    base_url, folder = server
    kwargs.setdefault("max_new_tokens", 12)
    return ChatEndpoint(model=folder, base_url=base_url, concurrency=1, backoff_s=0.05, **kwargs)


def test_the_chat_system_summarizes_through_a_real_server_and_caches(server):
    system = make(server, name="tiny served LM (API)")
    items = _items()
    out = system.summarize(items, "short", progress=False)
    assert len(out) == 3 and all(isinstance(o, str) for o in out)
    assert any(o.strip() for o in out)  # a random model still writes characters
    assert not any(s.cached for s in system.last_stats)
    assert all(s.latency_s > 0 for s in system.last_stats)
    again = make(server, name="tiny served LM (API)").summarize(items, "short", progress=False)
    assert again == out  # from the cache, not a second (greedy, same) generation


def test_environment_names_the_server(server, monkeypatch):
    base_url, folder = server
    monkeypatch.setenv("LABKIT_CHAT_BASE_URL", base_url)
    monkeypatch.setenv("LABKIT_CHAT_MODEL", folder)
    from labkit.summarize import study

    systems, skipped = study.zero_shot_systems({"zero_shot_model": "", "max_new_tokens": 8, "generate_batch": 1})
    assert [s.name for s in systems] == [f"{folder} (API)"]
    assert [row["system"] for row in skipped] == ["local zero-shot LLM"]
    assert len(systems[0].summarize(_items(1), "short", progress=False)) == 1


def test_long_transcripts_go_through_map_reduce_on_the_real_server(server):
    long = [Item("long", "\n".join(f"Alice: line {i} " + "word " * 20 for i in range(40)), "ref", source="x")]
    system = make(server, context_length=400, context_strategy="chunk")
    out = system.summarize(long, "short", progress=False)
    assert len(out) == 1 and system.chunked and system.chunked[0][1] >= 2


def test_truncation_is_recorded_as_a_warning(server):
    record = RunRecord("test_study", {})
    long = [Item("long", "Alice: " + "word " * 2000, "ref", source="x")]
    system = make(server, context_length=256, context_strategy="truncate", warn=record.warn)
    system.summarize(long, "short", progress=False)
    assert len(record.warnings) == 1 and "truncated" in record.warnings[0]
