"""The frontier's report: per-method summaries with intervals over prompts, paired comparisons,
the headline and its text, and the frontier figure.

Why a module of its own: :mod:`labkit.anchor.frontier` runs the sweep (models, presses,
prompts); everything here reads its rows, and :mod:`labkit.anchor.frontier` re-exports it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from labkit import stats
from labkit.anchor.frontier_names import FULL, NO_FAR_CONTEXT, OWN, TRAINED_FULL, budget_label
from labkit.anchor.presses import PRESSES
from labkit.errors import ParameterError
from labkit.figures import PALETTE, axis_type_for


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
