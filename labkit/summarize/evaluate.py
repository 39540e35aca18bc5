"""Run systems over items and turn their outputs into per-item scores and the scores table.

Kept out of the notebook so that the notebook only chooses systems and plots. Energy per
summary is measured with :mod:`labkit.carbon` around each (system, instruction) run; when all
summaries came from the cache, the energy measured when they were made is read back from the
system's cache folder, so a rerun reports the same cost it reports the first time.

:func:`item_scores` scores every summary once (ROUGE and the MiniLM meaning score per item);
:func:`score` turns them into one row per system, instruction type and query kind (``queries``:
``general``, ``specific`` and, when both are present, ``all``) with 95% intervals that resample
whole meetings (the queries of one meeting share its transcript). It also runs the two guards
on every run: the degenerate-output guard (:mod:`labkit.summarize.guards`) and the floor guard
(:mod:`labkit.summarize.floors`). A flagged system gets a ``flag`` in every table built from
the scores, one warning per system (through the system's ``warn``, i.e. ``record.warn`` in the
notebook), and its measures in the run record's ``results``, so no reader sees its ROUGE
without the caveat. Tables built from the scores are in :mod:`labkit.summarize.tables`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from labkit import io, records
from labkit.summarize import floors, guards, metrics
from labkit.summarize.base import ItemStats, Summarizer
from labkit.summarize.data import Item
from labkit.summarize.encoders import MINILM
from labkit.summarize.meaning import shared_scorer

MEANING = "minilm_cos"


@dataclass
class Run:
    """Outputs of one system under one instruction type, on the items it summarized.

    ``floor`` marks a floor of the floor guard (:mod:`labkit.summarize.floors`): the
    calibration baselines and Lead-k.
    """

    system: str
    kind: str
    instruction: str
    predictions: list[str]
    stats: list[ItemStats]
    energy_kwh_per_summary: float = float("nan")
    notes: dict = field(default_factory=dict)
    warn: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    items: list[Item] = field(default_factory=list, repr=False)
    floor: bool = False

    @property
    def cached_share(self) -> float:
        return float(np.mean([s.cached for s in self.stats])) if self.stats else float("nan")


def _energy_log(system: Summarizer) -> tuple[str, dict]:
    path = system.cache_folder() / "energy.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return str(path), data


def run_system(
    system: Summarizer,
    items: Sequence[Item],
    instruction: str,
    carbon=None,
    progress: bool = True,
    use_cache: bool = True,
) -> Run:
    """``system.summarize(items, instruction)`` with energy measured (when ``carbon`` is given)."""
    energy = float("nan")
    key = io.sha256_text(json.dumps(system.fingerprint(), sort_keys=True, default=str), instruction)
    if carbon is not None:
        with carbon.task(f"{system.name} | {instruction}"):
            predictions = system.summarize(items, instruction, progress=progress, use_cache=use_cache)
        fresh = sum(not s.cached for s in system.last_stats)
        path, log = _energy_log(system)
        if fresh:
            energy = carbon.measurements[-1].energy_kwh / fresh
            log[key] = energy
            io.write_json(path, log)
        else:
            energy = float(log.get(key, float("nan")))
    else:
        predictions = system.summarize(items, instruction, progress=progress, use_cache=use_cache)
    notes = system.describe() if hasattr(system, "describe") else {}
    return Run(
        system.name,
        system.kind,
        instruction,
        predictions,
        list(system.last_stats),
        energy,
        notes,
        system._warn,
        list(items),
        bool(getattr(system, "is_floor", False)),
    )


def run_all(
    systems: Sequence[Summarizer],
    items: Sequence[Item],
    instructions: Sequence[str],
    carbon=None,
    progress: bool = True,
    failed: list[dict] | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[Run]:
    """Every system under every instruction type.

    With ``failed`` given, a system that raises is isolated: its runs are dropped, a row
    ``{"system", "reason": "failed: <cause>"}`` is appended to ``failed`` and ``warn`` gets
    ``"failed: <system>: <cause>"`` (so ``labkit run`` reports the notebook as partial), and
    the other systems still run. Without it the error propagates (tests, scripts).
    """
    runs = []
    for system in systems:
        try:
            runs += [run_system(system, items, inst, carbon, progress) for inst in instructions]
        except Exception as exc:  # one failing system must not sink the study
            if failed is None:
                raise
            cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            failed.append({"system": system.name, "reason": f"failed: {cause}"})
            if warn is not None:
                warn(f"failed: {system.name}: {cause} (its row is marked failed; the other systems ran)")
    return runs


STUDY = "meeting_summarization"


def verdicts(scores: pd.DataFrame) -> dict[str, str]:
    """System name -> why :func:`score` flagged it degenerate (on any instruction), so a later
    table on a few items (the chunking study) can carry the verdict from all items."""
    out: dict[str, str] = {}
    if scores is None or "degenerate" not in scores:
        return out
    for system, group in scores[scores["degenerate"].astype(bool)].groupby("system", sort=False):
        reasons = list(dict.fromkeys(str(r) for r in group["degenerate_reason"] if str(r)))
        out[str(system)] = "; ".join(reasons)
    return out


def verdict_for(name: str, known: dict[str, str]) -> str:
    """The degenerate reason of ``name`` or of the system it derives from (``"<name> [chunk]"``)
    among ``known`` (:func:`verdicts`)."""
    if name in known:
        return known[name]
    base = [k for k in known if name.startswith(k + " [")]
    return known[max(base, key=len)] if base else ""


#: the per-item score columns (ROUGE F x 100 and the meaning score)
SCORE_COLUMNS = (*metrics.ROUGE_TYPES, "minilm_cos")


def item_scores(runs: Sequence[Run], meaning_model: str | None = MINILM) -> pd.DataFrame:
    """One row per (run, item): ``system, kind, instruction, item_id, meeting, queries, floor``,
    ROUGE-1/2/L/Lsum, ``minilm_cos`` (NaN when ``meaning_model`` is None), ``latency_s`` and
    ``words``. Every table, paired test and guard reads these same numbers."""

    scorer = shared_scorer(meaning_model) if meaning_model else None
    frames = []
    for run in runs:
        refs = [it.reference for it in run.items]
        frame = pd.DataFrame(
            {
                "system": run.system,
                "kind": run.kind,
                "instruction": run.instruction,
                "item_id": [it.item_id for it in run.items],
                "meeting": [it.source or it.item_id for it in run.items],
                "queries": [it.kind for it in run.items],
                "floor": run.floor,
            }
        )
        frame = pd.concat([frame, metrics.rouge_per_item(run.predictions, refs)], axis=1)
        frame["minilm_cos"] = scorer.per_item(run.predictions, refs) if scorer is not None else np.nan
        frame["latency_s"] = [s.latency_s for s in run.stats]
        frame["words"] = [len(p.split()) for p in run.predictions]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def query_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """``(queries, rows)``: each query kind present, then ``all`` when there are several."""
    kinds = list(dict.fromkeys(frame["queries"]))
    out = [(kind, frame[frame["queries"] == kind]) for kind in kinds]
    return out + [("all", frame)] if len(kinds) > 1 else out


def meetings_of(rows: pd.DataFrame):
    """The resampling groups: meetings, when there are at least two."""
    return rows["meeting"].to_numpy() if rows["meeting"].nunique() >= 2 else None


def score(
    runs: Sequence[Run],
    count_tokens: Callable[[str], int],
    price_table: Mapping[str, Mapping[str, float]],
    n_resamples: int = 1000,
    seed: int = 0,
    *,
    meaning_model: str | None = MINILM,
    record: records.RunRecord | None = None,
    per_item: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per run and query kind: ROUGE and the MiniLM meaning score (with 95% intervals
    over meetings), the degenerate-output guards and the floor guard (``flag``), length,
    latency, tokens/s, energy, cost.

    Args:
        meaning_model: sentence-transformers model of the meaning score (None: not computed).
        record: where guard results and warnings go (the notebook's run record; None: nowhere).
        per_item: :func:`item_scores` of ``runs`` when the caller already has them.
    """

    per_item = item_scores(runs, meaning_model) if per_item is None else per_item
    tokens: dict[str, int] = {}  # a transcript is counted once, not once per system

    def count(text: str) -> int:
        key = io.sha256_text(text)
        if key not in tokens:
            tokens[key] = count_tokens(text)
        return tokens[key]

    columns = [c for c in SCORE_COLUMNS if per_item[c].notna().all()] if len(per_item) else []
    rows = []
    for run in runs:
        guard = guards.assess(run.predictions, [it.transcript for it in run.items], [it.reference for it in run.items])
        flag = f"{guards.FLAG_MARK}: {guard['degenerate_reason']}" if guard["degenerate"] else ""
        mine = per_item[(per_item["system"] == run.system) & (per_item["instruction"] == run.instruction)]
        out_tokens = [count(p) for p in run.predictions]
        in_tokens = [count(it.transcript) for it in run.items]
        for queries, part in query_groups(mine):
            where = part.index - mine.index[0]
            ins = [in_tokens[i] for i in where]
            outs = [out_tokens[i] for i in where]
            eff = metrics.efficiency(part["latency_s"].tolist(), ins, outs)
            cost = metrics.cost_per_1000(
                run.system, eff["latency_s"], float(np.mean(ins)), float(np.mean(outs)), price_table
            )
            rows.append(
                {
                    "system": run.system,
                    "kind": run.kind,
                    "instruction": run.instruction,
                    "queries": queries,
                    "items": len(part),
                    "meetings": int(part["meeting"].nunique()),
                    "floor_role": run.floor,
                    "flag": flag,
                    **metrics.mean_intervals(part, columns, n_resamples, seed, meetings_of(part)),
                    **guard,
                    "summary_words": float(part["words"].mean()),
                    **eff,
                    "energy_wh_per_summary": 1000 * run.energy_kwh_per_summary,
                    "usd_per_1000": cost,
                    "cached_share": run.cached_share,
                }
            )
    frame = pd.DataFrame(rows)
    if MEANING not in frame:
        frame[MEANING] = np.nan
    frame = floors.apply(frame, per_item, record, {run.system: run.warn for run in runs})
    _report_guards(runs, frame, record)
    return frame


def _report_guards(runs: Sequence[Run], frame: pd.DataFrame, record: records.RunRecord | None) -> None:
    """One warning per degenerate system; guard measures and baseline notes into the record."""
    warn_of = {run.system: run.warn for run in runs}
    notes = {run.system: run.notes for run in runs if run.notes}
    frame = frame[
        frame["queries"] == frame.groupby(["system", "instruction"])["queries"].transform("last")
    ]  # one row per run (its widest query group)
    for system, group in frame.groupby("system", sort=False):
        bad = group[group["degenerate"]]
        if bad.empty:
            continue
        by_inst = dict(zip(bad["instruction"], bad["degenerate_reason"]))
        if len(set(by_inst.values())) == 1 and len(by_inst) == len(group):
            why = next(iter(by_inst.values()))
        else:
            why = "; ".join(f"{inst}: {reason}" for inst, reason in by_inst.items())
        expected = (
            " (expected: a calibration baseline)"
            if group["kind"].iloc[0] == "baseline"
            else "; its ROUGE does not measure summary quality"
        )
        message = f"{system} {guards.FLAG_MARK} ({why}){expected}"
        warn = warn_of.get(system) or (record.warn if record is not None else None)
        if warn is not None:
            warn(message)
    if record is None:
        return
    keep = [
        "items",
        "distinct1",
        "distinct2",
        "repeated_trigram_rate",
        "duplicate_share",
        "cross_item_overlap",
        "novel_bigram_rate",
        "length_ratio",
        "degenerate",
        "degenerate_reason",
    ]
    store = record.results.setdefault("output_guards", {})
    for _, r in frame.iterrows():
        entry = {}
        for k in keep:
            value = r[k]
            if k == "degenerate":
                entry[k] = bool(value)
            elif isinstance(value, str):
                entry[k] = value
            else:
                entry[k] = round(float(value), 4) if isfinite(float(value)) else None
        store[f"{r['system']} | {r['instruction']}"] = entry
    if notes:
        record.results.setdefault("calibration_baselines", {}).update(notes)


def with_pareto(
    scores: pd.DataFrame,
    quality: str = "rouge1",
    costs: Sequence[str] = ("latency_s", "usd_per_1000", "energy_wh_per_summary"),
    eligible: pd.Series | None = None,
) -> pd.DataFrame:
    """Add ``pareto_<cost>`` columns (true on the front of quality vs that cost).

    ``eligible`` (a boolean mask) limits the front to real candidates; by default calibration
    baselines, degenerate systems and systems not above the floor are left out: a constant text
    costs nothing and scores ROUGE, but nobody should choose it.
    """
    frame = scores.copy()
    if eligible is None:
        eligible = ~frame["kind"].eq("baseline")
        if "degenerate" in frame:
            eligible &= ~frame["degenerate"].astype(bool)
        if "below_floor" in frame:
            eligible &= ~frame["below_floor"].eq(True)
    for cost in costs:
        front = np.zeros(len(frame), dtype=bool)
        chosen = np.asarray(eligible, dtype=bool)
        if chosen.any():
            front[chosen] = metrics.pareto_front(frame[chosen], quality, cost).to_numpy(bool)
        frame[f"pareto_{cost}"] = front
    return frame


def longest(items: Sequence[Item], n: int, count_tokens: Callable[[str], int]) -> list[Item]:
    """The ``n`` items with the longest transcripts (for the truncation-vs-chunking study)."""
    if n <= 0:
        return list(items)
    return sorted(items, key=lambda it: -count_tokens(it.transcript))[:n]


def isfinite(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))
