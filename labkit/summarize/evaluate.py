"""Run systems over items and turn their outputs into the study's tables.

Kept out of the notebook so that the notebook only chooses systems and plots. Energy per
summary is measured with :mod:`labkit.carbon` around each (system, instruction) run; when all
summaries came from the cache, the energy measured when they were made is read back from the
system's cache folder, so a rerun reports the same cost it reports the first time.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from labkit import io
from labkit.summarize import metrics
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
    return Run(system.name, system.kind, instruction, predictions, list(system.last_stats), energy)


def run_all(systems: Sequence[Summarizer], items: Sequence[Item], instructions: Sequence[str],
            carbon=None, progress: bool = True) -> list[Run]:
    """Every system under every instruction type."""
    return [run_system(s, items, inst, carbon, progress) for s in systems for inst in instructions]


def score(runs: Sequence[Run], items: Sequence[Item], count_tokens: Callable[[str], int],
          price_table: Mapping[str, Mapping[str, float]], n_resamples: int = 1000,
          seed: int = 0) -> pd.DataFrame:
    """One row per run: ROUGE (with 95% CIs), length, latency, tokens/s, energy, cost."""
    references = [it.reference for it in items]
    input_tokens = [count_tokens(it.transcript) for it in items]
    rows = []
    for run in runs:
        rouge = metrics.rouge_summary(run.predictions, references, n_resamples, seed)
        output_tokens = [count_tokens(p) for p in run.predictions]
        eff = metrics.efficiency([s.latency_s for s in run.stats], input_tokens, output_tokens)
        cost = metrics.cost_per_1000(run.system, eff["latency_s"], float(np.mean(input_tokens)),
                                     float(np.mean(output_tokens)), price_table)
        rows.append({"system": run.system, "kind": run.kind, "instruction": run.instruction,
                     "items": len(items), **rouge,
                     "summary_words": float(np.mean([len(p.split()) for p in run.predictions])),
                     **eff, "energy_wh_per_summary": 1000 * run.energy_kwh_per_summary,
                     "usd_per_1000": cost, "cached_share": run.cached_share})
    return pd.DataFrame(rows)


def main_table(scores: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Paper-style table: one row per system, R-1 / R-2 / R-L per instruction type, each as
    ``mean [low, high]``."""
    frame = scores.copy()
    names = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "rougeLsum": "R-Lsum"}
    out = []
    for system, group in frame.groupby("system", sort=False):
        row = {"system": system, "kind": group["kind"].iloc[0]}
        for _, r in group.iterrows():
            for metric, label in names.items():
                row[f"{r['instruction']} {label}"] = (
                    f"{r[metric]:.{digits}f} [{r[metric + '_low']:.{digits}f}, "
                    f"{r[metric + '_high']:.{digits}f}]")
        out.append(row)
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
                costs: Sequence[str] = ("latency_s", "usd_per_1000", "energy_wh_per_summary")
                ) -> pd.DataFrame:
    """Add ``pareto_<cost>`` columns (true on the front of quality vs that cost)."""
    frame = scores.copy()
    for cost in costs:
        frame[f"pareto_{cost}"] = metrics.pareto_front(frame, quality, cost)
    return frame


def longest(items: Sequence[Item], n: int, count_tokens: Callable[[str], int]) -> list[Item]:
    """The ``n`` items with the longest transcripts (for the truncation-vs-chunking study)."""
    if n <= 0:
        return list(items)
    return sorted(items, key=lambda it: -count_tokens(it.transcript))[:n]


def isfinite(x: float) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))
