"""Data, extractive systems, metrics, fine-tuning and the study's explorer contract."""

import json

import numpy as np
import pandas as pd
import pytest

from labkit.errors import DataError, ParameterError
from labkit.summarize import evaluate, metrics, study
from labkit.summarize.chunking import TokenCounter, fit
from labkit.summarize.data import Item, load_jsonl
from labkit.summarize.extractive import GreedyOracle, LeadK


def test_jsonl_loader_names_file_line_and_field(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text(
        json.dumps({"transcript": "A: hello there.\nB: fine.", "summary": "Greetings."})
        + "\n"
        + json.dumps({"transcript": "A: budget is up.", "summary": "Budget.", "query": "Money?"})
        + "\n"
    )
    items = load_jsonl(good)
    assert [it.query for it in items] == [None, "Money?"] and items[1].kind == "specific"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"transcript": "A: hi.", "summary": "  "}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl.*'summary'.*no text"):
        load_jsonl(bad)
    bad.write_text(json.dumps({"summary": "x"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl.*transcript"):
        load_jsonl(bad)
    bad.write_text("")
    with pytest.raises(DataError, match="no items"):
        load_jsonl(bad)


def test_empty_transcript_is_refused_before_any_system_runs(items):
    broken = [Item("x", "   ", "ref", source="meeting-x")]
    with pytest.raises(DataError, match="meeting-x: field 'transcript' is empty"):
        LeadK().summarize(broken, "short", progress=False)


def test_truncation_and_the_error_strategy():
    counter = TokenCounter()  # ~4 characters per token
    text = "word " * 400
    kept = fit(text, counter, 100, "truncate")
    assert kept.truncated and 0 < kept.kept_share < 0.5 and len(kept.texts) == 1
    chunks = fit(text, counter, 100, "chunk").texts
    assert len(chunks) > 1 and all(counter.count(c) <= 100 for c in chunks)
    assert " ".join(chunks).split() == text.split()  # map-reduce reads every word
    with pytest.raises(ParameterError, match="meeting-7: the prompt needs 500 transcript tokens"):
        fit(text, counter, 100, "error", where="meeting-7")


def test_lead_k_respects_the_word_budget_and_the_oracle_beats_it(items):
    long_items = [
        Item(
            f"m{i}",
            "\n".join(f"Speaker: sentence number {j} about topic {i} goes here." for j in range(60)),
            f"They talked about sentence number 42 and topic {i}.",
            source=f"m{i}",
        )
        for i in range(4)
    ]
    lead = LeadK().summarize(long_items, "short", progress=False)
    oracle = GreedyOracle().summarize(long_items, "short", progress=False)
    assert all(len(s.split()) <= 60 for s in lead)
    refs = [it.reference for it in long_items]
    assert metrics.rouge_per_item(oracle, refs)["rouge1"].mean() > metrics.rouge_per_item(lead, refs)["rouge1"].mean()


def test_summaries_are_cached_per_system_prompt_and_input(items):
    system = LeadK()
    first = system.summarize(items, "medium", progress=False)
    again = system.summarize(items, "medium", progress=False)
    assert first == again and all(s.cached for s in system.last_stats)
    system.summarize(items, "short", progress=False)
    assert not any(s.cached for s in system.last_stats)  # another instruction, another key


def test_rouge_uses_stemming_and_intervals_bracket_the_mean():
    scores = metrics.rouge_per_item(["the cats were running"], ["the cat runs"])
    assert scores["rouge1"].iloc[0] > 60  # cats~cat, running~runs under the Porter stemmer
    from rouge_score import rouge_scorer  # the cached stemmer scores as rouge_score does

    plain = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True).score("the cat runs", "the cats were running")
    assert scores["rouge1"].iloc[0] == pytest.approx(100 * plain["rouge1"].fmeasure)
    frame = pd.DataFrame({"x": np.arange(20.0)})
    out = metrics.mean_intervals(frame, ["x"], 500)
    assert out["x_low"] < out["x"] < out["x_high"]
    grouped = metrics.mean_intervals(frame, ["x"], 500, groups=np.arange(20) // 5)
    assert grouped["x_high"] - grouped["x_low"] > out["x_high"] - out["x_low"]  # meetings
    with pytest.raises(DataError, match="reference 0 has no text"):
        metrics.rouge_per_item(["x"], [""])


def test_summary_rows_follow_the_explorer_contract(items):
    runs = evaluate.run_all([LeadK()], items, ["short"], progress=False)
    rows = study.summary_rows(runs)
    assert len(rows) == len(items)
    need = {
        "meeting_id",
        "query",
        "instruction",
        "system",
        "summary",
        "reference",
        "rouge1",
        "rouge2",
        "rougeL",
        "latency_s",
    }
    assert need <= set(rows[0]) and rows[0]["meeting_id"] == "meeting-0"
    import pathlib
    import tempfile

    from labkit.explore.summaries import load_summaries

    folder = pathlib.Path(tempfile.mkdtemp())
    frame = load_summaries(study.write_summaries(folder, rows))
    assert len(frame) == len(items) and frame["rouge1"].between(0, 100).all()


@pytest.mark.slow
def test_finetune_a_tiny_random_causal_lm_for_one_step(tmp_path, items, monkeypatch):
    """Unit-test scale only: a random 2-layer Llama saved locally, fine-tuned, then generating."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from labkit.summarize.finetune import FineTuneConfig, finetune
    from labkit.summarize.generative import HFGenerator

    vocab = {
        ch: i
        for i, ch in enumerate(
            ["<pad>", "</s>", "<unk>"]
            + sorted(set("".join(it.transcript + it.reference for it in items) + " .:?SWabcdefghijklmnopqrstuvwxyz"))
        )
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=512,
        )
    )
    base = tmp_path / "base"
    model.save_pretrained(base, safe_serialization=True)
    hf_tok.save_pretrained(base)
    tuned = finetune(
        items,
        FineTuneConfig(base_model=str(base), epochs=1, max_target_tokens=32, instructions=("short",)),
        progress=False,
    )
    assert (tuned.path / "labkit_model.json").is_file() and tuned.metrics["examples"] == len(items)
    again = finetune(
        items,
        FineTuneConfig(base_model=str(base), epochs=1, max_target_tokens=32, instructions=("short",)),
        progress=False,
    )
    assert again.path == tuned.path  # cached by base weights + config + items
    out = HFGenerator(str(tuned.path), max_new_tokens=8, context_strategy="truncate").summarize(
        items, "short", progress=False
    )
    assert len(out) == len(items)


def test_a_failing_system_becomes_a_failed_row_and_the_others_run(items):
    from labkit.summarize.base import Summarizer

    class Broken(Summarizer):
        def __init__(self):
            super().__init__("Broken LLM")

        def _summarize_batch(self, batch, inst):
            raise ConnectionError("endpoint went away\nsecond line")

    failed, warnings = [], []
    runs = evaluate.run_all(
        [Broken(), LeadK()], items, ["short", "medium"], progress=False, failed=failed, warn=warnings.append
    )
    assert [(r.system, r.instruction) for r in runs] == [("Lead-k", "short"), ("Lead-k", "medium")]
    assert failed == [{"system": "Broken LLM", "reason": "failed: ConnectionError: endpoint went away"}]
    assert warnings[0].startswith("failed: Broken LLM: ConnectionError: endpoint went away")
    with pytest.raises(ConnectionError):  # without `failed` the error is the caller's
        evaluate.run_all([Broken()], items, ["short"], progress=False)
