"""Plumbing shared by every model labkit trains with a Hugging Face ``Trainer``.

Each training run in labkit wants the same things around ``trainer.train()``: arguments that
never write checkpoints or report anywhere, energy measured by codecarbon, the logged loss curve,
and a model folder that appears in the cache whole or not at all (a killed run must not leave a
half-written folder that a later run would take for a cached model).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from labkit.io import write_json


def use_torch_threads() -> None:
    """Let torch use every core (or ``$LABKIT_TORCH_THREADS``): training is CPU-bound here."""
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("LABKIT_TORCH_THREADS", os.cpu_count() or 1))))


def training_arguments(output_dir: Path, *, max_steps: int, seed: int, progress: bool, **kwargs):
    """``TrainingArguments`` for a run that saves nothing itself: no checkpoints, no evaluation,
    no reporting integrations, CPU unless CUDA is there, about 50 loss logs per run."""
    import torch
    from transformers import TrainingArguments

    defaults = dict(
        output_dir=str(output_dir), max_steps=max_steps, logging_steps=max(1, max_steps // 50),
        save_strategy="no", eval_strategy="no", report_to=[],
        use_cpu=not torch.cuda.is_available(), seed=seed, data_seed=seed,
        dataloader_num_workers=0, disable_tqdm=not progress, remove_unused_columns=False)
    return TrainingArguments(**{**defaults, **kwargs})


def train_measured(trainer, task: str, *, carbon=None, progress: bool = True) -> dict[str, Any]:
    """Run ``trainer.train()`` inside a codecarbon task and summarise the run.

    Args:
        trainer: a ready ``transformers.Trainer``.
        task: the task name in the carbon session (and the run record).
        carbon: an open :class:`labkit.carbon.CarbonSession`; ``None`` measures in a private one.
        progress: when False, also silence the log lines Trainer prints without its tqdm bar.

    Returns:
        ``train_loss`` (mean of the last 10% of logged losses), ``loss_curve`` ([step, loss]
        pairs), ``energy_kwh`` and ``power_method``.
    """
    from labkit.carbon import CarbonSession

    if not progress:  # Trainer prints every log dict when its tqdm bar is off
        from transformers.trainer_callback import PrinterCallback
        trainer.remove_callback(PrinterCallback)
    own = carbon is None
    session = CarbonSession() if own else carbon
    if own:
        session.__enter__()
    try:
        with session.task(task) as measurements:
            trainer.train()
    finally:
        if own:
            session.__exit__(None, None, None)
    losses = [[h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h]
    tail = [loss for _, loss in losses[-max(1, len(losses) // 10):]]
    return {"train_loss": float(sum(tail) / len(tail)) if tail else float("nan"),
            "loss_curve": losses, "energy_kwh": measurements[-1].energy_kwh,
            "power_method": getattr(session, "power_method", None)}


@contextmanager
def atomic_model_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``final``; on a clean exit it replaces ``final`` in one rename.

    Write the model into the yielded folder (see :func:`save_model`). On an exception nothing
    at ``final`` changes and the scratch folder is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        out = work / "model"
        out.mkdir()
        yield out
        if final.exists():
            shutil.rmtree(final)
        try:
            os.replace(out, final)
        except OSError:  # another process finished the same model first
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def save_model(model, tokenizer, folder: Path, metadata: dict[str, Any]) -> None:
    """Save safetensors weights, the tokenizer and ``metrics.json`` (``metadata``) in ``folder``."""
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    write_json(Path(folder) / "metrics.json", metadata)
