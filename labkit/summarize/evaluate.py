"""Run systems over items and turn their outputs into the study's tables.

Kept out of the notebook so that the notebook only chooses systems and plots. Energy per
summary is measured with :mod:`labkit.carbon` around each (system, instruction) run; when all
summaries came from the cache, the energy measured when they were made is read back from the
system's cache folder, so a rerun reports the same cost it reports the first time.

:func:`score` also runs the degenerate-output guards (:mod:`labkit.summarize.guards`) and the
MiniLM meaning score (:mod:`labkit.summarize.meaning`) on every run: a flagged system gets a
``flag`` in every table built here, one warning per system (through the system's ``warn``, i.e.
``record.warn`` in the notebook), and its guard measures go to the current run record's
``results["output_guards"]``, so no reader sees its ROUGE without the caveat.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from labkit import io, records
from labkit.summarize import guards, metrics
from labkit.summarize.base import ItemStats, Summarizer
from labkit.summarize.data import Item


@dataclass
class Run:
    """Outputs of one system under one instruction type."""

    system: str
    kind: str
    instruction: str
    predictions: list[str]
    stats: list[ItemStats]
    energy_kwh_per_summary: float = float("nan")
    notes: dict = field(default_factory=dict)
    warn: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    @property
    def cached_share(self) -> float:
        return float(np.mean([s.cached for s in self.stats])) if self.stats else float("nan")


def _energy_log(system: Summarizer) -> tuple[str, dict]:
    path = system.cache_folder() / "energy.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return str(path), data


def run_system(system: Summarizer, items: Sequence[Item], instruction: str, carbon=None,
               progress: bool = True, use_cache: bool = True) -> Run:
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
    return Run(system.name, system.kind, instruction, predictions, list(system.last_stats), energy,
               notes, system._warn)


def run_all(systems: Sequence[Summarizer], items: Sequence[Item], instructions: Sequence[str],
            carbon=None, progress: bool = True, failed: list[dict] | None = None,
            warn: Callable[[str], None] | None = None) -> list[Run]:
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
                warn(f"failed: {system.name}: {cause} (its row is marked failed; the other "
                     "systems ran)")
    return runs


STUDY = "meeting_summarization"
#: system name -> why it was flagged degenerate in this process (filled by :func:`score`), so a
#: later table on a few items (the chunking study) can carry the verdict from all items.
VERDICTS: dict[str, str] = {}


def verdict_for(name: str) -> str:
    """The degenerate reason of ``name`` or of the system it derives from (``"<name> [chunk]"``)."""
    if name in VERDICTS:
        return VERDICTS[name]
    base = [k for k in VERDICTS if name.startswith(k + " [")]
    return VERDICTS[max(base, key=len)] if base else ""


def score(runs: Sequence[Run], items: Sequence[Item], count_tokens: Callable[[str], int],
          price_table: Mapping[str, Mapping[str, float]], n_resamples: int = 1000,
          seed: int = 0, *, meaning_model: str | None = "all-MiniLM-L6-v2",
          record: records.RunRecord | None = None) -> pd.DataFrame:
    """One row per run: ROUGE and the MiniLM meaning score (with 95% CIs), the degenerate-output
    guards and ``flag``, length, latency, tokens/s, energy, cost.

    Args:
        meaning_model: sentence-transformers model of the meaning score (None: not computed).
        record: where guard results and warnings go; default the study's current run record.
    """
    from labkit.summarize.meaning import shared_scorer

    record = record or records.current(STUDY)
    references = [it.reference for it in items]
    transcripts = [it.transcript for it in items]
    input_tokens = [count_tokens(it.transcript) for it in items]
    scorer = shared_scorer(meaning_model) if meaning_model else None
    rows = []
    for run in runs:
        rouge = metrics.rouge_summary(run.predictions, references, n_resamples, seed)
        meaning = scorer.summary(run.predictions, references, n_resamples, seed) if scorer else {}
        guard = guards.assess(run.predictions, transcripts, references)
        output_tokens = [count_tokens(p) for p in run.predictions]
        eff = metrics.efficiency([s.latency_s for s in run.stats], input_tokens, output_tokens)
        cost = metrics.cost_per_1000(run.system, eff["latency_s"], float(np.mean(input_tokens)),
                                     float(np.mean(output_tokens)), price_table)
        flag = f"{guards.FLAG_MARK}: {guard['degenerate_reason']}" if guard["degenerate"] else ""
        rows.append({"system": run.system, "kind": run.kind, "instruction": run.instruction,
                     "items": len(items), "flag": flag, **rouge, **meaning, **guard,
                     "summary_words": float(np.mean([len(p.split()) for p in run.predictions])),
                     **eff, "energy_wh_per_summary": 1000 * run.energy_kwh_per_summary,
                     "usd_per_1000": cost, "cached_share": run.cached_share})
    frame = pd.DataFrame(rows)
    _report_guards(runs, frame, record)
    return frame


def _report_guards(runs: Sequence[Run], frame: pd.DataFrame,
                   record: records.RunRecord | None) -> None:
    """One warning per degenerate system; guard measures and baseline notes into the record."""
    warn_of = {run.system: run.warn for run in runs}
    notes = {run.system: run.notes for run in runs if run.notes}
    for system, group in frame.groupby("system", sort=False):
        bad = group[group["degenerate"]]
        if bad.empty:
            continue
        by_inst = dict(zip(bad["instruction"], bad["degenerate_reason"]))
        if len(set(by_inst.values())) == 1 and len(by_inst) == len(group):
            why = next(iter(by_inst.values()))
        else:
            why = "; ".join(f"{inst}: {reason}" for inst, reason in by_inst.items())
        VERDICTS[system] = why
        expected = (" (expected: a calibration baseline)" if group["kind"].iloc[0] == "baseline"
                    else "; its ROUGE does not measure summary quality")
        message = f"{system} {guards.FLAG_MARK} ({why}){expected}"
        warn = warn_of.get(system) or (record.warn if record is not None else None)
        if warn is not None:
            warn(message)
    if record is None:
        return
    keep = ["items", "distinct1", "distinct2", "repeated_trigram_rate", "duplicate_share",
            "cross_item_overlap", "novel_bigram_rate", "length_ratio", "degenerate",
            "degenerate_reason"]
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


def main_table(scores: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Paper-style table: one row per system, R-1 / R-2 / R-L / R-Lsum and the MiniLM meaning
    score per instruction type, each as ``mean [low, high]``; ``rank R-1 / MiniLM`` per
    instruction (where they differ, ROUGE and meaning disagree); a degenerate system's name
    carries the mark and ``flag`` says why (per instruction when the reasons differ)."""
    from labkit.summarize.meaning import MEANING, MEANING_LABEL, rank_disagreement

    frame = scores.copy()
    names = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "rougeLsum": "R-Lsum"}
    if MEANING in frame:
        names[MEANING] = MEANING_LABEL
    ranks = (rank_disagreement(frame).set_index(["system", "instruction"])
             if MEANING in frame and frame[MEANING].notna().all() else None)
    record = records.current(STUDY)
    if ranks is not None and record is not None:
        shifted = ranks.reset_index()
        record.results["rank_disagreement"] = shifted[shifted["disagree"]][
            ["instruction", "system", "rank_rouge1", "rank_meaning"]].to_dict("records")
    out = []
    for system, group in frame.groupby("system", sort=False):
        reasons = {r["instruction"]: r["degenerate_reason"] for _, r in group.iterrows()
                   if r.get("degenerate", False)}
        if len(set(reasons.values())) > 1:
            flag = " | ".join(f"{inst}: {why}" for inst, why in reasons.items())
        else:
            flag = next(iter(reasons.values()), "")
        tags = ", ".join(dict.fromkeys(t for tag in group.get("degenerate_tags", [])
                                       for t in str(tag).split(", ") if t))
        row = {"system": guards.label(system, tags) if flag else system,
               "kind": group["kind"].iloc[0],
               "flag": f"{guards.FLAG_MARK}: {flag}" if flag else ""}
        for _, r in group.iterrows():
            for metric, label in names.items():
                row[f"{r['instruction']} {label}"] = (
                    f"{r[metric]:.{digits}f} [{r[metric + '_low']:.{digits}f}, "
                    f"{r[metric + '_high']:.{digits}f}]")
            if ranks is not None:
                rk = ranks.loc[(system, r["instruction"])]
                row[f"{r['instruction']} rank R-1 / {MEANING_LABEL}"] = (
                    f"{rk['rank_rouge1']} / {rk['rank_meaning']}")
        out.append(row)
    if record is not None:  # plain numbers per system and instruction (seed spreads, results/)
        record.results["rouge"] = {
            f"{r['system']} | {r['instruction']}": {m: round(float(r[m]), 4) for m in names}
            for _, r in frame.iterrows()}
    return pd.DataFrame(out)


def compare(runs: Sequence[Run], items: Sequence[Item], a: str, b: str, instruction: str,
            metric: str = "rouge1", n_resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of system ``a`` minus system ``b`` on the same items."""
    by = {(r.system, r.instruction): r for r in runs}
    refs = [it.reference for it in items]
    sa = metrics.rouge_per_item(by[(a, instruction)].predictions, refs)[metric]
    sb = metrics.rouge_per_item(by[(b, instruction)].predictions, refs)[metric]
    return {"a": a, "b": b, "instruction": instruction, "metric": metric,
            **metrics.paired_bootstrap(sa, sb, n_resamples, seed=seed)}


def with_pareto(scores: pd.DataFrame, quality: str = "rouge1",
                costs: Sequence[str] = ("latency_s", "usd_per_1000", "energy_wh_per_summary"),
                eligible: pd.Series | None = None) -> pd.DataFrame:
    """Add ``pareto_<cost>`` columns (true on the front of quality vs that cost).

    ``eligible`` (a boolean mask) limits the front to real candidates; by default calibration
    baselines and degenerate systems are left out: a constant text costs nothing and scores
    ROUGE, but nobody should choose it.
    """
    frame = scores.copy()
    if eligible is None:
        eligible = ~frame["kind"].eq("baseline")
        if "degenerate" in frame:
            eligible &= ~frame["degenerate"].astype(bool)
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
