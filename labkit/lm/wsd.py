"""Train the budgets of one model size as branches of one warmup-stable-decay (WSD) run.

A scaling sweep trains each model size at several token budgets D. With a cosine schedule every
budget is its own run from scratch: the schedule depends on the budget, so nothing is shared and
the sweep costs the sum of its budgets. With WSD (warm-up, a constant rate, then a short cool-down
over the last ``cooldown_fraction`` of the steps) a run of budget D is, up to its cool-down, the
same run as every longer one of the same size. Hägele et al. 2024 ("Scaling Laws and
Compute-Optimal Training Beyond Fixed Training Durations", arXiv 2405.18392) show that a 20%
(1-sqrt) cool-down matches or beats cosine at equal budget and propose exactly this for scaling
sweeps: one run of the longest budget, with each shorter budget branching off it at its own
cool-down. A size with budgets 0.5M, 1M, 2M and 4M tokens then costs 4M + 20% of the three
shorter ones (4.7M) instead of 7.5M.

:func:`train_chain` does this with Trainer's own checkpoint and resume (model, optimiser,
schedule state, RNG and the position in the data order are all restored), so a branch is
bit-for-bit the run a fresh WSD training of its budget would give (a test checks it on a tiny
config). Each branch is cached under its own config (the ordinary tiny-LM key), so a re-run
trains only the budgets the cache lacks, and a branch looked up alone is found like any model.
Hand-written because no library trains branch runs off one schedule; the training itself is
plain Trainer.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Sequence
from pathlib import Path

from labkit.errors import ParameterError
from labkit.lm.train import TinyLMConfig, TrainedLM, recipe, train_tiny_lm
from labkit.modelcache import lookup


def chain_configs(configs: Sequence[TinyLMConfig]) -> list[TinyLMConfig]:
    """The configs of one chain with the shared warm-up made explicit.

    Every branch must warm up alike to share its start, so a warm-up left to ``warmup_ratio``
    becomes ``warmup_ratio`` x the shortest branch's steps in every config (and so in its cache
    key). Raises :class:`ParameterError` unless the configs are WSD runs that differ only in
    ``train_tokens``."""

    if not configs:
        raise ParameterError("a WSD chain needs at least one config")
    first = configs[0]
    for c in configs:
        if c.schedule != "wsd":
            raise ParameterError(f"a WSD chain trains schedule='wsd' configs only, got {c.schedule!r}")
        if dataclasses.replace(c, train_tokens=first.train_tokens) != first:
            raise ParameterError("the configs of a WSD chain may differ only in train_tokens")
    if first.warmup_steps is not None:
        return list(configs)
    shortest = min(c.max_steps for c in configs)
    warmup = max(1, math.ceil(first.warmup_ratio * shortest))
    return [dataclasses.replace(c, warmup_steps=warmup) for c in configs]


def train_chain(configs: Sequence[TinyLMConfig], *, carbon=None, progress: bool = False) -> list[TrainedLM]:
    """Train (or load from the cache) every config of one chain; results in input order.

    The longest budget the cache lacks is trained once, checkpointing at the branch point
    (:attr:`TinyLMConfig.decay_start`) of every shorter missing budget; each of those then
    resumes its checkpoint and runs only its own cool-down. Budgets already cached are loaded.
    Metrics of a branch add ``branched_from_step`` (its start in the chain, 0 for the trunk) and
    its ``wall_s`` / energy are those of its own segment, so summing a sweep's ``wall_s``
    gives what it cost.

    Args:
        configs: WSD configs of one model size (see :func:`chain_configs`).
        carbon: an open :class:`labkit.carbon.CarbonSession` to measure in.
        progress: tqdm bars for tokenizing and training.
    """

    configs = chain_configs(configs)
    recipes = [recipe(c) for c in configs]
    found: dict[int, TrainedLM] = {}
    for i, (rec, _, _) in enumerate(recipes):
        if (hit := lookup(rec.kind, rec.key)) is not None:
            found[i] = TrainedLM(hit.name, hit.path, configs[i], hit.metrics)
    missing = sorted((i for i in range(len(configs)) if i not in found), key=lambda i: configs[i].max_steps)
    if missing:
        trunk = missing[-1]
        branches = [i for i in missing[:-1] if configs[i].max_steps < configs[trunk].max_steps]
        same_as_trunk = [i for i in missing[:-1] if i not in branches]
        logging_steps = max(1, configs[trunk].max_steps // 50)
        with tempfile.TemporaryDirectory(prefix="labkit-wsd-") as scratch:
            save_at = sorted({configs[i].decay_start for i in branches})
            trunk_branch = {"output_dir": scratch, "save_at": save_at, "logging_steps": logging_steps}
            found[trunk] = train_tiny_lm(
                configs[trunk], carbon=carbon, progress=progress, branch={**trunk_branch, "branched_from_step": 0}
            )
            for i in branches:
                step = configs[i].decay_start
                resume = Path(scratch) / f"checkpoint-{step}"
                branch = {"output_dir": scratch, "resume_from": str(resume), "logging_steps": logging_steps}
                found[i] = train_tiny_lm(
                    configs[i], carbon=carbon, progress=progress, branch={**branch, "branched_from_step": step}
                )
        for i in same_as_trunk:  # the same budget twice: one model
            found[i] = found[trunk]
    return [found[i] for i in range(len(configs))]
