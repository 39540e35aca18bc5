"""The KV-budget frontier: AnLLM's anchor cache against training-free KV compression (kvpress).

Why: the AnLLM paper compares its anchor cache only with a full cache and with recompute. A
reader's first question is whether anchor training beats the training-free compression they
could apply to the model they already have, at the same memory. This module answers it on
equal terms:

* one set of held-out k-shot prompts (:func:`labkit.anchor.prompts.kshot_prompts`: k
  demonstrations of real held-out text, then an open query). Anchor methods read the
  demonstrations closed by ``<AC>`` (AC) or as they are (EP: the periods are the anchors); the
  full cache and the presses read the same text without ``<AC>``;
* the context (demonstrations) is encoded once per method: full cache; anchor cache (anchor
  prefill, pruned to anchors + the open sentence); or a kvpress press keeping a set share
  (:mod:`labkit.anchor.presses`), on a sweep of shares and at each anchor method's own measured
  share of that very prompt;
* the scored tokens are the same for every method: the query tokens, teacher-forced one decode
  step at a time through the kept cache (the first from the prefill's last logits);
* the budget is the K/V bytes in the cache tensors right after the prefill, over the full
  cache of the same prompt. Prefill and query seconds are wall clock, synchronised on the
  model's device, per prompt (tables give medians over prompts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from labkit import stats
from labkit.anchor.anchors import AnchorSpec, anchor_token_ids
from labkit.anchor.presses import PRESSES, check_presses, run_anchor, run_cache
from labkit.anchor.prompts import DEMO_SEPARATOR, KShotPrompt, kshot_prompts
from labkit.anchor.study import train_config
from labkit.anchor.support import kv_bytes_per_token, max_positions, model_device
from labkit.anchor.training import train_anchor_lm
from labkit.errors import DataError, ModelError, ParameterError
from labkit.figures import PALETTE, axis_type_for

__all__ = [
    "DEFAULT_BUDGETS",
    "NO_FAR_CONTEXT",
    "anchor_methods",
    "encode",
    "frontier_table",
    "frontier_summary",
    "paired_comparison",
    "frontier_headline",
    "headline_text",
    "frontier_figure",
    "budget_label",
]

DEFAULT_BUDGETS: tuple[float, ...] = (0.5, 0.25, 0.10, 0.05, 0.02)
FULL, OWN = "full", "own"
#: the anchor-trained models read their own prompts through a full cache: the ceiling of the
#: cache rule alone, without what continued training changed (a guard on the headline)
TRAINED_FULL = "trained, full cache"
#: the flag of a probe whose queries a recent-window cache answers as well as the full cache
NO_FAR_CONTEXT = "this probe does not need the far context"


def budget_label(share: float) -> str:
    """``0.1`` -> ``"10%"`` (the budget column of the tables)."""
    return f"{100 * share:g}%"


def _check_budgets(budgets: Iterable[float]) -> list[float]:
    try:
        out = [float(b) for b in budgets]
    except (TypeError, ValueError):
        raise ParameterError(f"budgets must be a list of kept shares in (0, 1], got {budgets!r}") from None
    bad = [b for b in out if not 0 < b <= 1]
    if bad:
        raise ParameterError(f"budgets: kept shares must be in (0, 1], got {bad}")
    return out


def encode(tokenizer, prompt: KShotPrompt, spec: AnchorSpec | None) -> tuple[list[int], list[int]]:
    """``(context ids, query ids)`` of one prompt for one model. The context is the
    demonstrations, each closed by ``<AC>`` when ``spec`` is AC, joined and followed by the
    separator; the query is encoded on its own, so its tokens are the same for every method."""
    closed = [d + spec.ac_token if spec is not None and spec.mode == "ac" else d for d in prompt.demonstrations]
    context = DEMO_SEPARATOR.join(closed) + DEMO_SEPARATOR
    return (
        tokenizer.encode(context, add_special_tokens=False),
        tokenizer.encode(prompt.query, add_special_tokens=False),
    )


def anchor_methods(
    cfg: dict, setup: dict, modes: Sequence[str] = ("ac",), *, progress: bool = False, carbon=None
) -> dict[str, tuple]:
    """``label -> (model, tokenizer, spec)`` of the anchor methods: ``AnLLM-AC`` / ``AnLLM-EP``
    for each of ``modes`` (the setup's own anchor-trained model, or one trained / loaded from the
    model cache with the same recipe in the other mode) and the base model through the anchor
    cache of the profile's mode (what the continued training buys)."""

    spec, out = setup["spec"], {}
    for mode in modes:
        if mode not in ("ac", "ep"):
            raise ParameterError(f"frontier_modes: unknown anchor mode {mode!r}; choices: ac, ep")
        if mode == spec.mode:
            model, tokenizer = setup["models"]["anchor-trained"]
            out[f"AnLLM-{mode.upper()}"] = (model, tokenizer, spec)
            continue
        tcfg = train_config({**cfg, "mode": mode})
        trained = train_anchor_lm(setup["base_name"], tcfg, progress=progress, carbon=carbon)
        out[f"AnLLM-{mode.upper()}"] = (*trained.load(dtype="auto"), tcfg.spec)
    base_model, base_tokenizer = setup["models"]["base"]
    out["base + anchor cache"] = (base_model, base_tokenizer, spec)
    return out


# --------------------------------------------------------------------------- the sweep
def _fitting_prompts(
    base: tuple,
    anchors: Mapping[str, tuple],
    documents: Sequence[str],
    k: int,
    n_prompts: int,
    demo_tokens: int,
    query_tokens: int,
    seed: int,
) -> list[KShotPrompt]:
    """The first ``n_prompts`` prompts whose context + query fit every model's context window.

    Demonstrations are at least ``demo_tokens`` long but end on a sentence boundary, so a
    k-shot prompt can overrun a model's context; twice as many candidates are drawn (when the
    held-out text has them) and those that do not fit are skipped, the same for every method.
    """

    spec0 = next(iter(anchors.values()))[2] if anchors else AnchorSpec(mode="ac")
    try:
        candidates = kshot_prompts(documents, base[1], spec0, k, 2 * n_prompts, demo_tokens, query_tokens, seed)
    except DataError:
        candidates = kshot_prompts(documents, base[1], spec0, k, n_prompts, demo_tokens, query_tokens, seed)
    users = [(base[0], base[1], None)] + list(anchors.values())
    limits = [max_positions(m) for m, _, _ in users]
    fit = [
        p
        for p in candidates
        if all(lim is None or sum(map(len, encode(tok, p, spec))) <= lim for (_, tok, spec), lim in zip(users, limits))
    ]
    if len(fit) < n_prompts:
        raise ParameterError(
            f"only {len(fit)} of {len(candidates)} {k}-shot prompts fit in the models' "
            f"context of {min([x for x in limits if x] or [0])} tokens, {n_prompts} were asked "
            "for: lower demo_tokens, frontier_k or frontier_prompts"
        )
    return fit[:n_prompts]


def frontier_table(
    base: tuple,
    anchors: Mapping[str, tuple],
    documents: Sequence[str],
    *,
    k: int = 5,
    n_prompts: int = 20,
    demo_tokens: int = 64,
    query_tokens: int = 12,
    budgets: Iterable[float] = DEFAULT_BUDGETS,
    presses: Iterable[str] | None = None,
    seed: int = 0,
    chunk: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per (method, budget, prompt): KV bytes kept, kept share, query NLL / correct
    count, prefill and query seconds.

    Args:
        base: ``(model, tokenizer)`` of the base model (full cache and every press).
        anchors: ``label -> (model, tokenizer, spec)`` (:func:`anchor_methods`).
        documents: held-out documents the prompts are cut from.
        budgets: kept shares of the press sweep; presses also run at each anchor method's
            own kept share of each prompt (budget ``"= <label>"``).
        presses: kvpress press names (:data:`labkit.anchor.presses.PRESSES`; None = all).
        chunk: tokens per anchor-prefill forward (None: :func:`labkit.anchor.prefill_chunk`).
        warn: called with ``"failed: press <name>: <reason>"`` when a press fails on this
            model; that press is left out and the others go on (default: raise).
    """
    names = check_presses(presses)
    shares = _check_budgets(budgets)
    if not isinstance(n_prompts, int) or n_prompts < 2:
        raise ParameterError(f"n_prompts must be an int >= 2 (bootstrap over prompts), got {n_prompts!r}")
    base_model, base_tok = base
    prompts = _fitting_prompts(base, anchors, documents, k, n_prompts, demo_tokens, query_tokens, seed)
    device = model_device(base_model)
    plain = [encode(base_tok, p, None) for p in prompts]
    rows: list[dict] = []

    def add(method, kind, budget, target, p, length, per_tok, result):
        rows.append(
            {
                "method": method,
                "kind": kind,
                "budget": budget,
                "target_share": target,
                "prompt": p,
                "context_tokens": length,
                "query_tokens": len(plain[p][1]),
                "kv_bytes_full": per_tok * length,
                "kept_share": result["kv_bytes"] / (per_tok * length),
                **result,
            }
        )

    base_per_tok = kv_bytes_per_token(base_model)
    ids_of = [torch.tensor([c], device=device) for c, _ in plain]
    run_cache(base_model, ids_of[0], plain[0][1], None, None)  # warm-up, untimed
    for p, (ctx, query) in enumerate(plain):
        add(
            "full cache",
            FULL,
            FULL,
            1.0,
            p,
            len(ctx),
            base_per_tok,
            run_cache(base_model, ids_of[p], query, None, None),
        )
    matched: dict[str, list[int]] = {}  # budget label -> press kept tokens per prompt
    for label, (model, tok, spec) in anchors.items():
        ids_set, per_tok = anchor_token_ids(tok, spec), kv_bytes_per_token(model)
        dev = model_device(model)
        kept = []
        for p, prompt in enumerate(prompts):
            ctx, query = encode(tok, prompt, spec)
            if query != plain[p][1]:
                raise ModelError(
                    f"{label}: its tokenizer encodes query {p} differently from the "
                    "base tokenizer; the frontier needs the same scored tokens"
                )
            ids = torch.tensor([ctx], device=dev)
            if p == 0:
                run_anchor(model, ids, ids_set, query, chunk)  # warm-up, untimed
            result = run_anchor(model, ids, ids_set, query, chunk)
            add(label, OWN, OWN, math.nan, p, len(ctx), per_tok, result)
            if model is not base_model:
                add(
                    f"{label}, full cache",
                    TRAINED_FULL,
                    FULL,
                    1.0,
                    p,
                    len(ctx),
                    per_tok,
                    run_cache(model, ids, query, None, None),
                )
            share = result["kv_bytes"] / (per_tok * len(ctx))
            kept.append(max(1, min(len(plain[p][0]), round(share * len(plain[p][0])))))
        if kept not in matched.values():
            matched[f"= {label}"] = kept
    for name in names:
        start = len(rows)
        try:
            for p, (ctx, query) in enumerate(plain):
                L = len(ctx)
                todo = [(budget_label(s), s, max(1, round(s * L))) for s in shares]
                todo += [(b, kept[p] / L, kept[p]) for b, kept in matched.items()]
                for budget, target, n_kept in todo:
                    add(
                        PRESSES[name][0],
                        "press",
                        budget,
                        target,
                        p,
                        L,
                        base_per_tok,
                        run_cache(base_model, ids_of[p], query, name, n_kept),
                    )
        except Exception as exc:  # noqa: BLE001 - a press kvpress cannot run here is a warning
            del rows[start:]
            message = f"failed: press {name}: {type(exc).__name__}: {exc}".strip()
            if warn is None:
                raise ModelError(message) from exc
            warn(message)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- statistics
def _per_prompt(rows: pd.DataFrame, method: str, budget: str) -> pd.DataFrame:
    part = rows[(rows.method == method) & (rows.budget == budget)].sort_values("prompt")
    if part.empty:
        raise ParameterError(f"no frontier rows for method {method!r} at budget {budget!r}")
    return part


def _pooled(part: pd.DataFrame) -> Callable[[np.ndarray], np.ndarray]:
    """Perplexity and accuracy of a resample of prompts (their query tokens pooled)."""
    nll, n, ok = (part[c].to_numpy(dtype=float) for c in ("nll", "query_tokens", "correct"))

    def stat(idx: np.ndarray) -> np.ndarray:
        return np.array([math.exp(nll[idx].sum() / n[idx].sum()), ok[idx].sum() / n[idx].sum()])

    return stat


def frontier_summary(rows: pd.DataFrame, n_resamples: int = stats.N_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """One row per (method, budget): mean kept share and bytes, query perplexity and next-token
    accuracy (tokens pooled over prompts) with 95% percentile-bootstrap intervals over prompts
    (:func:`labkit.stats.distribution`), median prefill and query seconds."""
    out = []
    for (method, budget), part in rows.groupby(["method", "budget"], sort=False):
        part = part.sort_values("prompt")
        stat = _pooled(part)
        samples = stats.distribution(stat, len(part), n_resamples=n_resamples, seed=seed)
        ppl, acc = stat(np.arange(len(part)))
        ppl_iv, acc_iv = stats.from_samples(ppl, samples[:, 0]), stats.from_samples(acc, samples[:, 1])
        out.append(
            {
                "method": method,
                "kind": part.kind.iloc[0],
                "budget": budget,
                "prompts": len(part),
                "tokens_scored": int(part.query_tokens.sum()),
                "kept_share": part.kept_share.mean(),
                "kv_bytes": part.kv_bytes.mean(),
                "kv_bytes_full": part.kv_bytes_full.mean(),
                "perplexity": ppl_iv.estimate,
                "perplexity_lo": ppl_iv.low,
                "perplexity_hi": ppl_iv.high,
                "accuracy": acc_iv.estimate,
                "accuracy_lo": acc_iv.low,
                "accuracy_hi": acc_iv.high,
                "prefill_s": part.prefill_s.median(),
                "query_s": part.decode_s.median(),
            }
        )
    return pd.DataFrame(out)


def paired_comparison(
    rows: pd.DataFrame, a: tuple[str, str], b: tuple[str, str], n_resamples: int = stats.N_RESAMPLES, seed: int = 0
) -> dict:
    """``a`` minus ``b`` (each ``(method, budget)``) in query perplexity and accuracy on the same
    prompts, with paired 95% bootstrap intervals (the same resampled prompts for both).
    ``verdict`` (for ``a``): "better" only when the perplexity interval excludes 0 below it,
    "worse" when it excludes 0 above, else "no clear difference"."""
    pa, pb = _per_prompt(rows, *a), _per_prompt(rows, *b)
    if pa.prompt.tolist() != pb.prompt.tolist():
        raise ParameterError(f"{a} and {b} were not measured on the same prompts")
    sa, sb = _pooled(pa), _pooled(pb)
    samples = stats.distribution(lambda idx: sa(idx) - sb(idx), len(pa), n_resamples=n_resamples, seed=seed)
    d = sa(np.arange(len(pa))) - sb(np.arange(len(pa)))
    ppl, acc = stats.paired_from_samples(d[0], samples[:, 0]), stats.paired_from_samples(d[1], samples[:, 1])
    return {
        "a": f"{a[0]} ({a[1]})",
        "b": f"{b[0]} ({b[1]})",
        "kept_share_a": float(pa.kept_share.mean()),
        "kept_share_b": float(pb.kept_share.mean()),
        "ppl_diff": ppl.estimate,
        "ppl_diff_lo": ppl.low,
        "ppl_diff_hi": ppl.high,
        "acc_diff": acc.estimate,
        "acc_diff_lo": acc.low,
        "acc_diff_hi": acc.high,
        "verdict": "better" if ppl.below(0.0) else "worse" if ppl.clears(0.0) else "no clear difference",
    }


def frontier_headline(
    rows: pd.DataFrame,
    summary: pd.DataFrame,
    method: str = "AnLLM-AC",
    at: float = 0.10,
    n_resamples: int = stats.N_RESAMPLES,
    seed: int = 0,
) -> dict:
    """``method`` (at its own budget) against the best press (lowest query perplexity) at the
    same budget (``own_*``) and at ``at`` (``at_10pct_*``): paired differences in query
    perplexity and accuracy with 95% intervals, and a verdict (``record.results["frontier"]``).
    The best press is picked on the point estimate; the paired interval does not account for
    that choice, so it slightly favours the press."""
    own = summary[(summary.method == method) & (summary.budget == OWN)]
    if own.empty:
        return {}
    full = summary[summary.kind == FULL]
    out: dict = {
        "method": method,
        "prompts": int(own.prompts.iloc[0]),
        "kept_share": float(own.kept_share.iloc[0]),
        "ppl": float(own.perplexity.iloc[0]),
        "ppl_full_cache": float(full.perplexity.iloc[0]) if len(full) else math.nan,
    }
    out["flags"] = []
    streaming = summary[(summary.method == PRESSES["streaming_llm"][0]) & (summary.budget == f"= {method}")]
    if len(full) and len(streaming):  # the guard: does this probe need the far context at all?
        sl, f = streaming.iloc[0], full.iloc[0]
        out["streaming_ppl"] = float(sl.perplexity)
        out["needs_far_context"] = not bool(f.perplexity_lo <= sl.perplexity <= f.perplexity_hi)
        if not out["needs_far_context"]:
            out["flags"].append(
                f"{NO_FAR_CONTEXT} (StreamingLLM at {method}'s share "
                f"{sl.kept_share:.1%}: perplexity {sl.perplexity:.2f}, inside the "
                f"full cache's [{f.perplexity_lo:.2f}, {f.perplexity_hi:.2f}])"
            )
    own_full = summary[summary.method == f"{method}, full cache"]
    if len(own_full):  # the same model through a full cache: what the pruning itself costs
        cmp = paired_comparison(rows, (method, OWN), (f"{method}, full cache", FULL), n_resamples, seed)
        out.update(
            {
                "ppl_own_full_cache": float(own_full.perplexity.iloc[0]),
                **{f"vs_own_full_{k}": cmp[k] for k in ("ppl_diff", "ppl_diff_lo", "ppl_diff_hi")},
            }
        )
    for key, budget in (("own", f"= {method}"), (f"at_{round(100 * at)}pct", budget_label(at))):
        presses = summary[(summary.kind == "press") & (summary.budget == budget)]
        if presses.empty:
            continue
        best = presses.sort_values("perplexity").iloc[0]
        cmp = paired_comparison(rows, (method, OWN), (best.method, best.budget), n_resamples, seed)
        out.update(
            {
                f"{key}_press": str(best.method),
                f"{key}_press_kept_share": cmp["kept_share_b"],
                f"{key}_press_ppl": float(best.perplexity),
            }
        )
        out.update(
            {
                f"{key}_{k}": cmp[k]
                for k in ("ppl_diff", "ppl_diff_lo", "ppl_diff_hi", "acc_diff", "acc_diff_lo", "acc_diff_hi", "verdict")
            }
        )
    return out


def headline_text(h: dict) -> str:
    """The closing sentence of the frontier section, with intervals, from :func:`frontier_headline`."""
    if not h:
        return "no anchor method was measured"
    text = (
        f"{h['method']} keeps {h['kept_share']:.1%} of the KV cache after the prompt; its query "
        f"perplexity is {h['ppl']:.2f} (base model, full cache: {h['ppl_full_cache']:.2f}, "
        f"{h['prompts']} prompts)."
    )
    if "ppl_own_full_cache" in h:
        text += (
            f" The same model with a full cache: {h['ppl_own_full_cache']:.2f}; pruning costs "
            f"{h['vs_own_full_ppl_diff']:+.2f} (95% CI {h['vs_own_full_ppl_diff_lo']:+.2f} to "
            f"{h['vs_own_full_ppl_diff_hi']:+.2f}), so a lead over the presses beyond that comes "
            "from the continued training, not from the cache."
        )
    for key, where in (("own", "at its own budget"), ("at_10pct", "at a 10% budget")):
        if f"{key}_press" in h:
            text += (
                f" Against the best press {where} ({h[f'{key}_press']}, "
                f"{h[f'{key}_press_kept_share']:.1%} kept): perplexity difference "
                f"{h[f'{key}_ppl_diff']:+.2f} (95% CI {h[f'{key}_ppl_diff_lo']:+.2f} to "
                f"{h[f'{key}_ppl_diff_hi']:+.2f}), accuracy difference {h[f'{key}_acc_diff']:+.1%} "
                f"({h[f'{key}_acc_diff_lo']:+.1%} to {h[f'{key}_acc_diff_hi']:+.1%}): "
                f"{h[f'{key}_verdict']}."
            )
    if h.get("flags"):
        text += " Flag: " + "; ".join(h["flags"]) + "."
    return text


# --------------------------------------------------------------------------- figure
def frontier_figure(
    summary: pd.DataFrame,
    title: str = "KV budget frontier: anchor cache vs training-free compression (kvpress)",
    dodge_step: float = 0.03,
):
    """Query perplexity (95% CI) against the share of the KV cache kept (log x): one line per
    press, the anchor methods as marked points, the full cache as the ceiling line. Press
    points are dodged by ``dodge_step`` (3%) of their share per press (anchor points by twice
    that), so that their error bars do not overlap (say so in the caption)."""
    import plotly.graph_objects as go

    fig = go.Figure()

    def err(part, thin=False):
        return dict(
            type="data",
            symmetric=False,
            array=part.perplexity_hi - part.perplexity,
            arrayminus=part.perplexity - part.perplexity_lo,
            thickness=1 if thin else 2,
            width=3 if thin else 6,
        )

    presses = summary[summary.kind == "press"]
    groups = list(presses.groupby("method", sort=False))
    for i, (name, part) in enumerate(groups):
        part = part.sort_values("kept_share")
        # dodge: each press's points sit a few percent apart in x, so their intervals stay legible
        dodge = 1 + dodge_step * (i - (len(groups) - 1) / 2)
        fig.add_scatter(
            x=part.kept_share * dodge,
            y=part.perplexity,
            error_y=err(part, True),
            name=name,
            mode="lines+markers",
            line=dict(color=PALETTE[(i + 1) % len(PALETTE)], width=1.5),
        )
    symbols = ["star", "diamond", "square", "triangle-up"]
    anchors = summary[summary.kind == OWN]
    for i, (_, row) in enumerate(anchors.iterrows()):
        part = anchors.loc[[row.name]]
        dodge = 1 + 2 * dodge_step * (i - (len(anchors) - 1) / 2)
        fig.add_scatter(
            x=part.kept_share * dodge,
            y=part.perplexity,
            error_y=err(part),
            mode="markers",
            name=f"{row.method} (own budget)",
            marker=dict(
                symbol=symbols[i % len(symbols)],
                size=14,
                color=PALETTE[0] if i == 0 else "#555",
                line=dict(width=1, color="#000"),
            ),
        )
    shares = summary.kept_share.to_numpy(dtype=float)
    full = summary[summary.kind == FULL]
    if len(full):
        fig.add_scatter(
            x=[shares.min() / 1.08, 1.0],
            y=[full.perplexity.iloc[0]] * 2,
            mode="lines",
            name="full cache (ceiling)",
            line=dict(color=PALETTE[7], dash="dash"),
        )
    for _, row in summary[summary.kind == TRAINED_FULL].iterrows():
        fig.add_scatter(
            x=[shares.min() / 1.08, 1.0],
            y=[row.perplexity] * 2,
            mode="lines",
            name=row.method,
            line=dict(color="#999", dash="dot", width=1.5),
        )
    values = summary[["perplexity", "perplexity_lo", "perplexity_hi"]].to_numpy(dtype=float).ravel()
    kind = axis_type_for(values)
    ticks = [t for t in (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0) if shares.min() / 1.5 <= t <= 1.0]
    fig.update_xaxes(
        type="log",
        tickvals=ticks,
        ticktext=[budget_label(t) for t in ticks],
        title_text="KV cache kept after the prompt (share of the full cache, log scale)",
    )
    fig.update_yaxes(type=kind, title_text="query perplexity (95% CI)" + (", log scale" if kind == "log" else ""))
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25))
    return fig
