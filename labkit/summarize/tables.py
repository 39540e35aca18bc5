"""The study's tables, built from :func:`labkit.summarize.evaluate.score` and
:func:`~labkit.summarize.evaluate.item_scores`: the paper-style main table per query kind and
the paired comparisons (the fine-tuned vs zero-shot headline, each system against Lead-k).

Every paired difference is :func:`labkit.stats.paired_difference` on the same items, resampled
by meeting (QMSum asks several queries of one meeting: they share a transcript, so they are
not independent draws), with its 95% interval; a difference is called only where the interval
excludes zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from labkit import records, stats
from labkit.summarize import floors, guards
from labkit.summarize.evaluate import meetings_of, query_groups
from labkit.summarize.meaning import MEANING, MEANING_LABEL, rank_disagreement

LABELS = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "rougeLsum": "R-Lsum", MEANING: MEANING_LABEL}


def _flag_text(group: pd.DataFrame) -> str:
    """The row's flags (degenerate and/or floor), per instruction when they differ."""
    by_inst = {r["instruction"]: r["flag"] for _, r in group.iterrows() if r["flag"]}
    if len(set(by_inst.values())) == 1 and len(by_inst) == len(group):
        return next(iter(by_inst.values()))
    return " | ".join(f"{inst}: {flag}" for inst, flag in by_inst.items())


def system_label(system: str, group: pd.DataFrame, figure: bool = False) -> str:
    """``system`` with its marks: the degenerate tags (or reasons) and ``⚠ not above floor``."""
    tags = ", ".join(
        dict.fromkeys(
            t
            for tag in group.get("degenerate_tags", pd.Series(dtype=str)).fillna("")
            for t in str(tag).split(", ")
            if t
        )
    )
    label = guards.label(system, tags)
    if "below_floor" in group and group["below_floor"].eq(True).any():
        where = sorted(
            set(group.loc[group["below_floor"].eq(True), "instruction"]),
            key=list(dict.fromkeys(group["instruction"])).index,
        )
        whole = len(where) == group["instruction"].nunique()
        label += f" {floors.FLOOR_MARK}" + ("" if whole or not figure else f" ({', '.join(where)})")
    return label


def main_table(scores: pd.DataFrame, digits: int = 1, record: records.RunRecord | None = None) -> pd.DataFrame:
    """Paper-style table: one row per query kind and system, R-1 / R-2 / R-L / R-Lsum and the
    MiniLM meaning score per instruction type as ``mean [low, high]`` (intervals resample
    meetings), ``rank R-1 / MiniLM`` per instruction within the query kind, and ``flag`` (the
    degenerate reason and/or ``⚠ not above floor``); a flagged system's name carries the mark.
    Every instruction type of a query is scored against that query's one reference."""
    frame = scores.copy()
    names = {k: v for k, v in LABELS.items() if k in frame and frame[k].notna().all()}
    out, disagreements = [], []
    for queries in dict.fromkeys(frame["queries"]):
        part = frame[frame["queries"] == queries]
        ranks = None
        if MEANING in names:
            ranks = rank_disagreement(part).set_index(["system", "instruction"])
            shifted = ranks.reset_index()
            disagreements += [
                {"queries": queries, **r}
                for r in shifted[shifted["disagree"]][["instruction", "system", "rank_rouge1", "rank_meaning"]].to_dict(
                    "records"
                )
            ]
        for system, group in part.groupby("system", sort=False):
            row = {
                "queries": queries,
                "system": system_label(system, group),
                "kind": group["kind"].iloc[0],
                "items": int(group["items"].max()),
                "flag": _flag_text(group),
            }
            for _, r in group.iterrows():
                for metric, label in names.items():
                    row[f"{r['instruction']} {label}"] = (
                        f"{r[metric]:.{digits}f} [{r[metric + '_low']:.{digits}f}, {r[metric + '_high']:.{digits}f}]"
                    )
                if ranks is not None:
                    rk = ranks.loc[(system, r["instruction"])]
                    row[f"{r['instruction']} rank R-1 / {MEANING_LABEL}"] = (
                        f"{rk['rank_rouge1']} / {rk['rank_meaning']}"
                    )
            out.append(row)
    if record is not None:  # plain numbers per system, instruction and query kind
        record.results["rank_disagreement"] = disagreements
        record.results["rouge"] = {
            f"{r['system']} | {r['instruction']} | {r['queries']}": {m: round(float(r[m]), 4) for m in names}
            for _, r in frame.iterrows()
        }
    return pd.DataFrame(out)


def paired(
    per_item: pd.DataFrame,
    a: str,
    b: str,
    instructions: Sequence[str],
    metrics: Sequence[str] = ("rouge1",),
    n_resamples: int = 1000,
    seed: int = 0,
    by_queries: bool = True,
) -> pd.DataFrame:
    """``a - b`` per instruction type, query kind (and all items) and metric, on the items both
    systems summarized, resampled by meeting: means, difference, 95% interval, share of
    resamples with ``a`` ahead, two-sided bootstrap p, and ``verdict`` (who is ahead, or that
    the interval includes zero)."""
    rows = []
    for inst in instructions:
        both = per_item[per_item["instruction"] == inst]
        left = both[both["system"] == a].set_index("item_id")
        right = both[both["system"] == b].set_index("item_id")
        common = left.index.intersection(right.index)
        if not len(common):
            continue
        left = left.loc[common].reset_index()
        groups = query_groups(left) if by_queries else [("all", left)]
        for queries, part in groups:
            other = right.loc[part["item_id"]]
            for metric in metrics:
                d = stats.paired_difference(
                    part[metric].to_numpy(float),
                    other[metric].to_numpy(float),
                    groups=meetings_of(part),
                    n_resamples=n_resamples,
                    seed=seed,
                )
                verdict = (
                    f"{a} ahead"
                    if d.low > 0
                    else f"{b} ahead"
                    if d.high < 0
                    else "no difference shown (interval includes 0)"
                )
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "instruction": inst,
                        "queries": queries,
                        "metric": metric,
                        "items": len(part),
                        "meetings": int(part["meeting"].nunique()),
                        "mean_a": float(part[metric].mean()),
                        "mean_b": float(other[metric].mean()),
                        "mean_diff": d.estimate,
                        "low": d.low,
                        "high": d.high,
                        "p_a_better": d.p_a_better,
                        "p_value": d.p_value,
                        "verdict": verdict,
                    }
                )
    return pd.DataFrame(rows)
