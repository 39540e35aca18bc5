"""The recall frontier: which cache keeps what a long-range recall query needs, at equal KV budget.

Why a second frontier beside the perplexity one (:mod:`labkit.anchor.frontier`): held-out prose
queries barely use the far context, so every cache rule scores alike there. The recall probe
(:mod:`labkit.anchor.recall`) asks for values bound up to ``bindings`` sentences back; a cache
that kept no trace of a binding sentence must fail its query. Methods, all on the same prompts:

* the base model's **full cache** (the ceiling; it must answer the probe, else nothing below
  means anything: :data:`FULL_CACHE_FLOOR`);
* the **anchor cache** of AnLLM-AC / AnLLM-EP and of the base model (``base + anchor cache``),
  and the anchor-trained models through a **full cache** (what pruning costs them);
* **kvpress presses** on the base model at the sweep's shares (``budgets``) and at each anchor
  method's own kept share (``= <label>``).

Every prompt of the probe has the same length, so each method runs all prompts as one batch:
one prefill of the bindings (pruned or pressed), then one teacher-forced forward of the queries
on top of the kept cache (exact: the queries never compress, and the anchor rule is applied
inside the block by its mask). A query is correct when the argmax after its key is its value.

Statistics (:mod:`labkit.stats`): each prompt holds one query per distance bucket, so per bucket
the items are prompts; pooled accuracy is clustered by prompt. "Better" is decided by paired
differences on the same prompts whose 95% interval excludes 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from labkit import stats
from labkit.anchor.anchors import AnchorSpec, anchor_token_ids
from labkit.anchor.cache import anchor_extend, anchor_id_tensor, anchor_prefill
from labkit.anchor.frontier import FULL, NO_FAR_CONTEXT, OWN, TRAINED_FULL, budget_label
from labkit.anchor.presses import PRESSES, check_presses, press_failed, pressed_prefill
from labkit.anchor.recall import ProbeVocab, RecallProbe, RecallPrompts, recall_prompts
from labkit.anchor.support import kv_bytes_per_token, kv_cache_bytes, model_device
from labkit.errors import ModelError, ParameterError

__all__ = [
    "FULL_CACHE_FLOOR",
    "NO_FAR_CONTEXT",
    "recall_rows",
    "recall_summary",
    "paired_recall",
    "recall_headline",
    "recall_headline_text",
]

#: the full cache must reach this recall (lower end of the 95% interval) at every distance,
#: or the probe is not answered even with everything kept and the flag says so
FULL_CACHE_FLOOR = 0.90
ALL = "all"


def _anchor_of(tokenizer, spec: AnchorSpec | None) -> int | None:
    """The id appended to every probe sentence: ``<AC>`` for AC, none for EP (the period is
    already the anchor) and for plain text."""
    if spec is None or spec.mode != "ac":
        return None
    (tid,) = anchor_token_ids(tokenizer, spec)
    return int(tid)


def _scores(logits: torch.Tensor, prompts: RecallPrompts) -> np.ndarray:
    """``(N, Q)`` bool: the argmax after each query's key is its value."""
    index = prompts.key_index.to(logits.device)
    picked = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))
    return (picked.argmax(-1).cpu() == prompts.target).numpy()


@torch.no_grad()
def _run_cache(model, prompts: RecallPrompts, press: str | None, kept: int | None) -> tuple[np.ndarray, int]:
    device = model_device(model)
    ctx, queries = prompts.context.to(device), prompts.queries.to(device)
    cache, _ = pressed_prefill(model, press, ctx, kept)
    kv = kv_cache_bytes(cache)
    L = ctx.shape[1]
    pos = torch.arange(L, L + queries.shape[1], device=device).expand(queries.shape[0], -1)
    logits = model(input_ids=queries, past_key_values=cache, position_ids=pos, use_cache=True).logits
    return _scores(logits.float(), prompts), kv


@torch.no_grad()
def _run_anchor(model, prompts: RecallPrompts, anchor_ids: set[int], chunk: int | None) -> tuple[np.ndarray, int]:
    device = model_device(model)
    ids_t = anchor_id_tensor(anchor_ids, device)
    ctx = prompts.context.to(device)
    state = anchor_prefill(model, ctx, torch.isin(ctx, ids_t), open_limit=None, chunk=chunk)
    kv = state.kv_bytes()
    logits = anchor_extend(model, state, prompts.queries, ids_t)
    return _scores(logits, prompts), kv


def recall_rows(
    base: tuple,
    anchors: Mapping[str, tuple],
    vocab: ProbeVocab,
    probe: RecallProbe,
    n_prompts: int,
    budgets: Sequence[float] = (0.25, 0.10),
    presses: Sequence[str] | None = None,
    seed: int = 0,
    chunk: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per (method, budget, prompt, query): ``correct``, ``distance``, ``kept_share``.

    Args:
        base: ``(model, tokenizer)`` of the base model (full cache and presses).
        anchors: label -> ``(model, tokenizer, spec)`` of the anchor methods
            (:func:`labkit.anchor.frontier.anchor_methods`).
        vocab / probe: the probe's words and sizes (:func:`labkit.anchor.recall.probe_vocab`).
        budgets: kept shares of the press sweep; presses also run at each anchor method's own
            kept share (budget ``"= <label>"``).
        warn: called with ``"failed: press <name>: <reason>"`` when a press fails; that press
            is left out (default: raise).
    """
    names = check_presses(presses)
    shares = [float(b) for b in budgets]
    if any(not 0 < b <= 1 for b in shares):
        raise ParameterError(f"recall budgets must be kept shares in (0, 1], got {list(budgets)}")
    base_model, _ = base
    plain = recall_prompts(vocab, probe, n_prompts, seed, anchor=None)
    rows: list[dict] = []

    def add(method, kind, budget, correct, kv, per_tok, length):
        share = kv / (per_tok * length * correct.shape[0])
        for p in range(correct.shape[0]):
            for q in range(correct.shape[1]):
                rows.append(
                    {
                        "method": method,
                        "kind": kind,
                        "budget": budget,
                        "prompt": p,
                        "distance": int(plain.distance[p, q]),
                        "correct": bool(correct[p, q]),
                        "kept_share": share,
                        "kv_bytes": kv / correct.shape[0],
                        "kv_bytes_full": per_tok * length,
                    }
                )

    base_tok = kv_bytes_per_token(base_model)
    L = plain.context.shape[1]
    add("full cache", FULL, FULL, *_run_cache(base_model, plain, None, None), base_tok, L)
    matched: dict[str, int] = {}
    for label, (model, tok, spec) in anchors.items():
        own = recall_prompts(vocab, probe, n_prompts, seed, anchor=_anchor_of(tok, spec))
        if not torch.equal(own.target, plain.target):
            raise ModelError(f"{label}: its probe prompts differ from the base model's")
        per_tok, length = kv_bytes_per_token(model), own.context.shape[1]
        correct, kv = _run_anchor(model, own, anchor_token_ids(tok, spec), chunk)
        add(label, OWN, OWN, correct, kv, per_tok, length)
        if model is not base_model:
            add(f"{label}, full cache", TRAINED_FULL, FULL, *_run_cache(model, own, None, None), per_tok, length)
        kept = max(1, min(L, round(kv / (per_tok * length * own.n) * L)))
        if kept not in matched.values():
            matched[f"= {label}"] = kept
    for name in names:
        start = len(rows)
        todo = [(budget_label(s), max(1, round(s * L))) for s in shares] + list(matched.items())
        try:
            for budget, kept in todo:
                add(PRESSES[name][0], "press", budget, *_run_cache(base_model, plain, name, kept), base_tok, L)
        except Exception as exc:  # noqa: BLE001 - a press kvpress cannot run here is a warning
            del rows[start:]
            press_failed(name, exc, warn)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- statistics
def _part(rows: pd.DataFrame, method: str, budget: str) -> pd.DataFrame:
    part = rows[(rows.method == method) & (rows.budget == budget)]
    if part.empty:
        raise ParameterError(f"no recall rows for method {method!r} at budget {budget!r}")
    return part.sort_values(["prompt", "distance"])


def _accuracy(part: pd.DataFrame, far: Sequence[int] | None = None, *, n_resamples: int, seed: int) -> stats.Interval:
    """Pooled accuracy (over ``far`` buckets only, if given), clustered by prompt."""
    sel = part if far is None else part[part.distance.isin(list(far))]
    return stats.interval(sel.correct.to_numpy(float), groups=sel.prompt.to_numpy(), n_resamples=n_resamples, seed=seed)


def recall_summary(
    rows: pd.DataFrame, probe: RecallProbe, n_resamples: int = stats.N_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """One row per (method, budget): kept share, pooled and far-bucket recall with 95%
    intervals (clustered by prompt), recall per distance bucket (``d<k>``, ``d<k>_lo``,
    ``d<k>_hi``: one query per prompt, so the items are prompts) and the lowest per-bucket
    interval end (``worst_bucket_lo``)."""
    out = []
    for (method, budget), part in rows.groupby(["method", "budget"], sort=False):
        pooled = _accuracy(part, n_resamples=n_resamples, seed=seed)
        far = _accuracy(part, probe.far_buckets, n_resamples=n_resamples, seed=seed)
        row = {
            "method": method,
            "kind": part.kind.iloc[0],
            "budget": budget,
            "prompts": int(part.prompt.nunique()),
            "kept_share": float(part.kept_share.mean()),
            "recall": pooled.estimate,
            "recall_lo": pooled.low,
            "recall_hi": pooled.high,
            "far_recall": far.estimate,
            "far_recall_lo": far.low,
            "far_recall_hi": far.high,
        }
        lows = []
        for d in probe.buckets:
            iv = stats.interval(part[part.distance == d].correct.to_numpy(float), n_resamples=n_resamples, seed=seed)
            row[f"d{d}"], row[f"d{d}_lo"], row[f"d{d}_hi"] = iv.estimate, iv.low, iv.high
            lows.append(iv.low)
        row["worst_bucket_lo"] = float(np.nanmin(lows))
        out.append(row)
    return pd.DataFrame(out)


def paired_recall(
    rows: pd.DataFrame,
    a: tuple[str, str],
    b: tuple[str, str],
    buckets: Sequence[int] | None = None,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> stats.PairedDifference:
    """Recall of ``a`` minus ``b`` (each ``(method, budget)``) over the same prompts and
    queries (only ``buckets``, if given); paired bootstrap over prompts."""
    pa, pb = _part(rows, *a), _part(rows, *b)
    if buckets is not None:
        pa, pb = pa[pa.distance.isin(list(buckets))], pb[pb.distance.isin(list(buckets))]
    if pa[["prompt", "distance"]].values.tolist() != pb[["prompt", "distance"]].values.tolist():
        raise ParameterError(f"{a} and {b} were not measured on the same recall queries")
    ma = pa.groupby("prompt").correct.mean().to_numpy(float)
    mb = pb.groupby("prompt").correct.mean().to_numpy(float)
    return stats.paired_difference(ma, mb, n_resamples=n_resamples, seed=seed)


def _verdict(d: stats.PairedDifference) -> str:
    return "better" if d.clears(0.0) else "worse" if d.below(0.0) else "no clear difference"


def _diff(d: stats.PairedDifference) -> dict:
    return {"diff": d.estimate, "lo": d.low, "hi": d.high, "verdict": _verdict(d)}


def recall_headline(
    rows: pd.DataFrame,
    summary: pd.DataFrame,
    probe: RecallProbe,
    methods: Sequence[str] = ("AnLLM-AC", "AnLLM-EP"),
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> dict:
    """The recall frontier's guards and headline (``record.results["recall"]``).

    * ``full_cache_answers``: the full cache's lowest per-bucket interval end reaches
      :data:`FULL_CACHE_FLOOR` (else ``flags`` says the probe is not answered at all);
    * per anchor method ``m``: StreamingLLM at ``m``'s kept share against the full cache,
      pooled (``needs_far_context`` False and :data:`NO_FAR_CONTEXT` in ``flags`` when the
      press's recall lies inside the full cache's interval) and on the far buckets (paired);
      ``m`` against the best press (highest pooled recall) at its own share, at 10% and at 25%,
      pooled and far (paired); and against its own full cache (what pruning costs).
    The best press is picked on the point estimate; its paired interval does not account for
    that choice, which slightly favours the press.
    """
    kw = dict(n_resamples=n_resamples, seed=seed)
    s = summary.set_index(["method", "budget"])
    full = s.loc[("full cache", FULL)]
    out: dict = {
        "prompts": int(full.prompts),
        "bindings": probe.bindings,
        "buckets": list(probe.buckets),
        "far_buckets": list(probe.far_buckets),
        "full_cache_recall": float(full.recall),
        "full_cache_recall_lo": float(full.recall_lo),
        "full_cache_recall_hi": float(full.recall_hi),
        "full_cache_worst_bucket_lo": float(full.worst_bucket_lo),
        "full_cache_answers": bool(full.worst_bucket_lo >= FULL_CACHE_FLOOR),
        "flags": [],
    }
    if not out["full_cache_answers"]:
        out["flags"].append(
            f"the full cache does not answer the probe (lowest per-distance "
            f"interval end {full.worst_bucket_lo:.2f} < {FULL_CACHE_FLOOR})"
        )
    presses = summary[summary.kind == "press"]
    for m in methods:
        if (m, OWN) not in s.index:
            continue
        h: dict = {
            "kept_share": float(s.loc[(m, OWN)].kept_share),
            "recall": float(s.loc[(m, OWN)].recall),
            "far_recall": float(s.loc[(m, OWN)].far_recall),
        }
        if (f"{m}, full cache", FULL) in s.index:
            h["vs_own_full"] = _diff(paired_recall(rows, (m, OWN), (f"{m}, full cache", FULL), **kw))
        budget = f"= {m}"
        if ("StreamingLLM", budget) in s.index:
            sl = s.loc[("StreamingLLM", budget)]
            inside = bool(full.recall_lo <= sl.recall <= full.recall_hi)
            h["streaming_recall"] = float(sl.recall)
            h["needs_far_context"] = not inside
            h["streaming_vs_full_far"] = _diff(
                paired_recall(rows, ("StreamingLLM", budget), ("full cache", FULL), probe.far_buckets, **kw)
            )
            if inside:
                out["flags"].append(
                    f"{NO_FAR_CONTEXT} (StreamingLLM at {m}'s share "
                    f"{sl.kept_share:.1%} recalls {sl.recall:.2f}, inside the full "
                    f"cache's [{full.recall_lo:.2f}, {full.recall_hi:.2f}])"
                )
        for key, bud in (("own", budget), ("at_10pct", budget_label(0.10)), ("at_25pct", budget_label(0.25))):
            at = presses[presses.budget == bud]
            if at.empty:
                continue
            best = at.sort_values(["recall", "far_recall"], ascending=False).iloc[0]
            pair = (best.method, bud)
            h[key] = {
                "press": str(best.method),
                "press_kept_share": float(best.kept_share),
                "press_recall": float(best.recall),
                "pooled": _diff(paired_recall(rows, (m, OWN), pair, **kw)),
                "far": _diff(paired_recall(rows, (m, OWN), pair, probe.far_buckets, **kw)),
            }
        out[m] = h
    return out


def _pm(d: dict) -> str:
    return f"{d['diff']:+.2f} (95% CI {d['lo']:+.2f} to {d['hi']:+.2f})"


def recall_headline_text(h: dict) -> str:
    """The recall frontier's closing sentences, with paired intervals, from :func:`recall_headline`."""
    text = (
        f"Full cache: recall {h['full_cache_recall']:.2f} [{h['full_cache_recall_lo']:.2f}, "
        f"{h['full_cache_recall_hi']:.2f}] over {h['prompts']} prompts of {h['bindings']} "
        f"bindings (lowest per-distance interval end {h['full_cache_worst_bucket_lo']:.2f})."
    )
    for m in ("AnLLM-AC", "AnLLM-EP"):
        r = h.get(m)
        if not r:
            continue
        text += f" {m} keeps {r['kept_share']:.1%} and recalls {r['recall']:.2f} (far buckets {r['far_recall']:.2f})"
        if "vs_own_full" in r:
            text += f"; against its own full cache {_pm(r['vs_own_full'])}"
        if "streaming_vs_full_far" in r:
            text += (
                f"; StreamingLLM at that share vs the full cache on the far buckets {_pm(r['streaming_vs_full_far'])}"
            )
        if "own" in r:
            o = r["own"]
            text += (
                f"; against the best press at that share ({o['press']}): pooled {_pm(o['pooled'])}, "
                f"far {_pm(o['far'])}: {o['pooled']['verdict']}"
            )
        text += "."
    if h.get("flags"):
        text += " Flags: " + "; ".join(h["flags"]) + "."
    return text
