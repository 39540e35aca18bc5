"""The floor guard: a system whose ROUGE-1 interval does not clear the best floor is flagged.

ROUGE is far from zero for text that ignores the meeting (QMSum's references share a generic
vocabulary), so a ROUGE-1 mean says nothing until it is compared with what such text scores on
the same items at the same length. Three floors (``Run.floor``), all at the instruction type's
target length: the best constant training reference and random transcript sentences
(:mod:`labkit.summarize.baselines`), and Lead-k (the first sentences). For every row of the
scores table (system x instruction type x query kind) the guard takes each floor's mean
ROUGE-1 **on the same items** and the best of them; the row is *above the floor* only when its
whole 95% interval lies above that value (:meth:`labkit.stats.Interval.clears`). Otherwise it
gets ``⚠ not above floor`` in the ``flag`` column, its label in the figures, one warning per
system and an entry in the run record's ``results["floors"]``, exactly like the degenerate
flag. Lead-k, itself a floor, is held against the two others; the calibration baselines are
the floors and are not judged.

The guard can fire on any system, the oracle included (a 40-word extract cannot reach the
recall of a ~100-word reference text); ``results["floor_verdict"]`` says in words which
non-oracle systems clear every floor, or that none does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from labkit import records

FLOOR_MARK = "⚠ not above floor"
#: systems that are ceilings, not candidates (the verdict names the non-oracle systems)
ORACLES = ("Oracle (greedy)",)


def _subset(per_item: pd.DataFrame, instruction: str, queries: str) -> pd.DataFrame:
    rows = per_item[per_item["instruction"] == instruction]
    return rows if queries == "all" else rows[rows["queries"] == queries]


def apply(
    scores: pd.DataFrame,
    per_item: pd.DataFrame,
    record: records.RunRecord | None = None,
    warn_of: Mapping[str, Callable[[str], None] | None] | None = None,
) -> pd.DataFrame:
    """Add ``floor_system``, ``floor_rouge1``, ``below_floor`` (None for the calibration
    baselines) and the floor reason to ``flag``; warn once per flagged system; fill
    ``record.results["floors"]`` and ``["floor_verdict"]``."""
    frame = scores.copy()
    frame["floor_system"], frame["floor_rouge1"] = "", np.nan
    frame["below_floor"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    floors = list(dict.fromkeys(per_item.loc[per_item["floor"].astype(bool), "system"]))
    if not floors or not len(frame):
        return frame
    for idx, row in frame.iterrows():
        rows = _subset(per_item, row["instruction"], row["queries"])
        ids = set(rows.loc[rows["system"] == row["system"], "item_id"])
        best = None
        for floor in floors:
            if floor == row["system"]:
                continue
            mine = rows[(rows["system"] == floor) & rows["item_id"].isin(ids)]
            if len(mine) == len(ids) and len(ids):
                value = float(mine["rouge1"].mean())
                if best is None or value > best[1]:
                    best = (floor, value)
        if best is None:
            continue
        frame.at[idx, "floor_system"], frame.at[idx, "floor_rouge1"] = best
        if row["kind"] == "baseline":
            continue
        low = row.get("rouge1_low", np.nan)
        above = bool(np.isfinite(low) and low > best[1])
        frame.at[idx, "below_floor"] = not above
        if not above:
            spread = f"[{low:.1f}, {row['rouge1_high']:.1f}]" if np.isfinite(low) else "(no interval: one meeting)"
            why = f"{FLOOR_MARK}: R-1 {row['rouge1']:.1f} {spread} does not clear {best[0]} ({best[1]:.1f})"
            frame.at[idx, "flag"] = f"{row['flag']}; {why}" if row["flag"] else why
    _report(frame, per_item, floors, record, warn_of or {})
    return frame


def where_below(frame: pd.DataFrame, system: str) -> list[str]:
    """``"<queries> <instruction>"`` for each row of ``system`` below the floor."""
    bad = frame[(frame["system"] == system) & frame["below_floor"].eq(True)]
    return [f"{q} {i}" for q, i in zip(bad["queries"], bad["instruction"])]


def verdict(frame: pd.DataFrame) -> tuple[list[str], str]:
    """``(systems, sentence)``: the non-oracle systems above the floor in every row they have,
    and a plain sentence saying so (or that none is)."""
    judged = frame[frame["below_floor"].notna() & ~frame["system"].isin(ORACLES)]
    clear = [s for s, g in judged.groupby("system", sort=False) if not g["below_floor"].any()]
    if clear:
        return clear, (
            f"{', '.join(clear)} clear{'s' if len(clear) == 1 else ''} every floor "
            "(constant, random sentences, Lead-k at the same length) in every "
            "instruction type and query kind"
        )
    somewhere = [s for s, g in judged.groupby("system", sort=False) if (~g["below_floor"].astype(bool)).any()]
    tail = (
        f"; {', '.join(somewhere)} clear{'s' if len(somewhere) == 1 else ''} it in some rows only" if somewhere else ""
    )
    return [], ("no non-oracle system clears every floor in every instruction type and query kind" + tail)


def _report(frame: pd.DataFrame, per_item: pd.DataFrame, floors: list[str], record, warn_of) -> None:
    for system in dict.fromkeys(frame.loc[frame["below_floor"].eq(True), "system"]):
        message = (
            f"{system} {FLOOR_MARK} ({', '.join(where_below(frame, system))}): its ROUGE-1 "
            "interval does not clear the best of constant / random / Lead-k at the same "
            "length on the same items"
        )
        warn = warn_of.get(system) or (record.warn if record is not None else None)
        if warn is not None:
            warn(message)
    if record is None:
        return
    store = record.results.setdefault("floors", {})
    for (queries, inst), group in frame.groupby(["queries", "instruction"], sort=False):
        rows = _subset(per_item, inst, queries)
        judged = group[group["below_floor"].notna()]
        store[f"{queries} | {inst}"] = {
            "floor_rouge1": {
                f: round(float(rows.loc[rows["system"] == f, "rouge1"].mean()), 4)
                for f in floors
                if (rows["system"] == f).any()
            },
            "above": judged.loc[~judged["below_floor"].astype(bool), "system"].tolist(),
            "not_above": judged.loc[judged["below_floor"].astype(bool), "system"].tolist(),
        }
    clear, sentence = verdict(frame)
    record.results["floor_verdict"] = {"clears_every_floor": clear, "says": sentence}
