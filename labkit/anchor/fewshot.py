"""k-shot multiple-choice accuracy, full attention vs the anchor cache (OpenBookQA, PIQA, BoolQ).

Each task's rows are turned into ``{"context", "choices", "answer"}`` items by one formatter in
:data:`FORMATTERS`, so a new task is one table entry, not another branch. Tasks whose data the
registry cannot provide (offline) are skipped with a warning in the run record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch

from labkit.anchor.anchors import AnchorSpec, anchor_flags, anchor_token_ids
from labkit.anchor.support import model_device
from labkit.anchor.teacher_forced import anchor_cache_logits
from labkit.data import load
from labkit.errors import DataUnavailableError, ParameterError

__all__ = ["FEWSHOT_TASKS", "FORMATTERS", "fewshot_items", "fewshot_accuracy", "fewshot_panel"]


def _openbookqa(row) -> dict:
    choices = row["choices"]
    texts, labels = list(choices["text"]), list(choices["label"])
    return {
        "context": f"Question: {row['question_stem']}\nAnswer:",
        "choices": [f" {t}" for t in texts],
        "answer": labels.index(row["answerKey"]),
    }


def _piqa(row) -> dict:
    return {
        "context": f"Goal: {row['goal']}\nSolution:",
        "choices": [f" {row['sol1']}", f" {row['sol2']}"],
        "answer": int(row["label"]),
    }


def _boolq(row) -> dict:
    return {
        "context": f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:",
        "choices": [" no", " yes"],
        "answer": int(bool(row["answer"])),
    }


#: task name -> formatter of one registry row (``labkit.data.load(task)``) into an item.
FORMATTERS: dict[str, Callable[[pd.Series], dict]] = {"openbookqa": _openbookqa, "piqa": _piqa, "boolq": _boolq}
FEWSHOT_TASKS = tuple(FORMATTERS)


def fewshot_items(task: str, frame: pd.DataFrame) -> list[dict]:
    """Normalise a registry frame to ``{"context", "choices", "answer"}`` items."""
    formatter = FORMATTERS.get(task)
    if formatter is None:
        raise ParameterError(f"unknown few-shot task {task!r}; choose from {FEWSHOT_TASKS}")
    return [formatter(row) for _, row in frame.iterrows()]


@torch.no_grad()
def fewshot_accuracy(
    model, tokenizer, spec: AnchorSpec, items: list[dict], k: int = 5, n_eval: int = 50, chunk: int = 64
) -> dict[str, float]:
    """k-shot accuracy (choice with the highest summed log-likelihood) under full attention and
    under anchor inference (pruned cache; each demonstration closed by an anchor)."""
    if len(items) < k + 1:
        raise ParameterError(f"need more than k={k} items for a k-shot evaluation, got {len(items)}")
    ids_set = anchor_token_ids(tokenizer, spec)
    closer = spec.ac_token if spec.mode == "ac" else ""
    demos = "\n\n".join(f"{d['context']}{d['choices'][d['answer']]}{closer}" for d in items[:k])
    right = {"full": 0, "anchor": 0}
    device = model_device(model)
    evaluated = items[k : k + n_eval]
    for item in evaluated:
        prefix = tokenizer.encode(f"{demos}\n\n{item['context']}", add_special_tokens=False)
        scores = {"full": [], "anchor": []}
        for choice in item["choices"]:
            cont = tokenizer.encode(choice, add_special_tokens=False)
            ids = torch.tensor([prefix + cont], device=device)
            n = len(cont)
            for inference in ("full", "anchor"):
                if inference == "full":
                    logits = model(input_ids=ids).logits.float()
                else:
                    logits = anchor_cache_logits(model, ids, anchor_flags(ids, ids_set), chunk=chunk)
                lp = torch.log_softmax(logits[0, -n - 1 : -1], dim=-1)
                scores[inference].append(float(lp.gather(1, ids[0, -n:, None]).sum()))
        for inference in right:
            right[inference] += int(
                max(range(len(scores[inference])), key=scores[inference].__getitem__) == item["answer"]
            )
    return {f"accuracy_{m}": right[m] / len(evaluated) for m in right} | {"items": len(evaluated)}


def fewshot_panel(
    model,
    tokenizer,
    spec: AnchorSpec,
    tasks: Sequence[str] = FEWSHOT_TASKS,
    k: int = 5,
    n_eval: int = 50,
    record=None,
    loader=None,
) -> pd.DataFrame | None:
    """Few-shot accuracy per task via ``labkit.data.load``; tasks whose data are unavailable
    (offline) are skipped with ``record.warn``. Returns ``None`` when no task could run."""

    loader = loader or load
    rows = []
    for task in tasks:
        try:
            frame = loader(task)
        except DataUnavailableError as err:
            msg = f"skipped few-shot {task}: data unavailable ({str(err).splitlines()[0]})"
            if record is not None:
                record.warn(msg)
            continue
        result = fewshot_accuracy(model, tokenizer, spec, fewshot_items(task, frame), k, n_eval)
        rows.append({"task": task, **result})
    return pd.DataFrame(rows) if rows else None
