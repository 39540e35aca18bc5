"""One interface for every summarizer: ``summarize(items) -> list[str]``, batched and cached.

A system only implements :meth:`Summarizer._summarize_batch`; the base class validates the
items, looks each one up in an on-disk cache keyed by system + prompt + input hash (so a rerun,
or a run that failed half-way through an API outage, never recomputes a finished summary),
shows a tqdm bar, and keeps per-item latency so that metrics can report seconds per transcript
and tokens per second. Latency is wall time of the batch divided by the items in it, unless the
system reports what each item cost (:attr:`Summarizer._item_seconds`): embedding systems do, so
that an item is charged for embedding its transcript even when the vectors were already there
(from a cache, or from the instruction type run before).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit import io
from labkit.errors import ParameterError
from labkit.paths import cache_dir
from labkit.summarize.data import Instruction, Item, validate
from labkit.summarize.data import instruction as get_instruction
from labkit.timing import timed

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class ItemStats:
    """What one summary cost: seconds (measured when it was made) and whether it was cached."""

    item_id: str
    latency_s: float
    cached: bool
    output_words: int


class Summarizer:
    """Base class. Subclasses set ``name`` and implement :meth:`_summarize_batch`.

    Args:
        name: label in tables and the cache folder name.
        batch_size: items per call of :meth:`_summarize_batch`.
        warn: called with one message per problem a reader must see (pass ``record.warn``).
    """

    kind = "system"  # "extractive" | "fine-tuned" | "zero-shot" | "baseline"
    #: a floor of the floor guard (:mod:`labkit.summarize.floors`): Lead-k and the baselines
    is_floor = False

    def __init__(self, name: str, batch_size: int = 8, warn: Callable[[str], None] | None = None):
        if batch_size < 1:
            raise ParameterError(f"batch_size must be >= 1, got {batch_size}")
        self.name = name
        self.batch_size = batch_size
        self.warn = warn or (lambda message: None)
        self.last_stats: list[ItemStats] = []
        self.warnings: list[str] = []
        #: seconds per item of the batch just summarized, when the system measures them itself
        self._item_seconds: list[float] | None = None

    # -- what subclasses provide -------------------------------------------------------------
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the output (model, k, decoding ...); part of the cache key."""
        return {"class": type(self).__name__}

    def _summarize_batch(self, items: Sequence[Item], inst: Instruction) -> list[str]:
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        self.warn(message)

    def cache_folder(self) -> Path:
        return cache_dir("summaries", _SAFE.sub("_", self.name))

    def cache_key(self, item: Item, inst: Instruction) -> str:
        system = json.dumps(self.fingerprint(), sort_keys=True, default=str)
        return io.sha256_text(system, inst.name, inst.prompt("", item.query), io.sha256_text(item.transcript))

    def _cache_path(self, key: str) -> Path:
        return self.cache_folder() / key[:2] / f"{key}.json"

    def summarize(
        self,
        items: Sequence[Item],
        instruction: str | Instruction = "medium",
        *,
        use_cache: bool = True,
        progress: bool = True,
    ) -> list[str]:
        """Summaries of ``items`` in order, following ``instruction`` (long / medium / short).

        Each finished summary is written to the cache at once, so an error part-way keeps
        everything done before it.
        """
        from tqdm.auto import tqdm

        inst = instruction if isinstance(instruction, Instruction) else get_instruction(instruction)
        items = [validate(item) for item in items]
        outputs: list[str | None] = [None] * len(items)
        stats: list[ItemStats | None] = [None] * len(items)
        todo = []
        for i, item in enumerate(items):
            path = self._cache_path(self.cache_key(item, inst))
            if use_cache and path.is_file():
                entry = json.loads(path.read_text(encoding="utf-8"))
                outputs[i] = entry["summary"]
                stats[i] = ItemStats(item.item_id, float(entry["latency_s"]), True, len(entry["summary"].split()))
            else:
                todo.append(i)
        bar = tqdm(total=len(todo), desc=f"{self.name} ({inst.name})", disable=not progress or not todo, leave=False)
        try:
            for start in range(0, len(todo), self.batch_size):
                index = todo[start : start + self.batch_size]
                batch = [items[i] for i in index]
                # a model's own device when it has one (HFGenerator), else the device rule
                self._item_seconds = None
                results, seconds = timed(lambda: self._summarize_batch(batch, inst), getattr(self, "device", "auto"))
                if len(results) != len(batch):  # a bug in a subclass, not bad input
                    raise RuntimeError(f"{self.name} returned {len(results)} summaries for {len(batch)} items")
                own = self._item_seconds
                per_item = (
                    list(own) if own is not None and len(own) == len(batch) else [seconds / len(batch)] * len(batch)
                )
                for i, item, summary, seconds in zip(index, batch, results, per_item):
                    summary = summary.strip()
                    io.write_json(
                        self._cache_path(self.cache_key(item, inst)),
                        {
                            "system": self.name,
                            "item": item.item_id,
                            "instruction": inst.name,
                            "summary": summary,
                            "latency_s": seconds,
                        },
                    )
                    outputs[i] = summary
                    stats[i] = ItemStats(item.item_id, seconds, False, len(summary.split()))
                bar.update(len(batch))
        finally:
            bar.close()
        self.last_stats = [s for s in stats if s is not None]
        return [o or "" for o in outputs]
