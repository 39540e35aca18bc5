"""Plumbing shared by every model labkit trains with a Hugging Face ``Trainer``.

Each training run in labkit wants the same things around ``trainer.train()``: arguments that
never write checkpoints or report anywhere (:func:`training_arguments`, the one place arguments
are made, whatever the arguments class), energy measured by codecarbon per run or per epoch and
the logged loss curve (:func:`train_measured`), and safetensors weights (:func:`save_model`).
Where the result is kept, and under which key, is :mod:`labkit.modelcache`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.carbon import CarbonSession, epoch_callback
from labkit.device import compute_dtype, cpu_threads, resolve_device
from labkit.errors import ParameterError


def use_torch_threads() -> None:
    """Let torch use the threads this process has (:func:`labkit.device.cpu_threads`: every
    core, or the share ``labkit run`` gives each kernel): training is CPU-bound here."""
    import torch

    torch.set_num_threads(cpu_threads())


def training_arguments(
    output_dir: Path,
    *,
    seed: int,
    progress: bool,
    max_steps: int | None = None,
    epochs: float | None = None,
    steps_per_epoch: int | None = None,
    args_class=None,
    **kwargs,
):
    """Arguments for a run that saves nothing itself: no checkpoints, no evaluation, no
    reporting integrations, on the package's device, about 50 loss logs per run.

    The device is :func:`labkit.device.resolve_device` (a notebook's ``device`` parameter or
    ``$LABKIT_DEVICE``, else CUDA when there is one): ``use_cpu`` when it is the CPU, and bf16
    mixed precision when it is a CUDA device with bf16 support and mixed precision is on
    (:func:`labkit.device.compute_dtype`); float32 otherwise. The run record names both.

    Args:
        output_dir: Trainer scratch folder (nothing is written there).
        seed: model and data-order seed.
        progress: tqdm bar on or off.
        max_steps: length of the run in optimiser steps; or give ``epochs`` instead.
        epochs: length of the run in epochs (for epoch-level energy); ``steps_per_epoch``
            (batches per epoch) spaces the loss logs, 10 steps apart when unknown.
        args_class: ``TrainingArguments`` (default), ``Seq2SeqTrainingArguments``,
            ``SentenceTransformerTrainingArguments``...
        **kwargs: anything else the arguments class takes; overrides the defaults.
    """

    if (max_steps is None) == (epochs is None):
        raise ParameterError(
            "training_arguments needs exactly one of max_steps and epochs, got "
            f"max_steps={max_steps!r}, epochs={epochs!r}"
        )
    device = resolve_device()
    if args_class is None:
        from transformers import TrainingArguments as args_class
    if max_steps is not None:
        length, total = dict(max_steps=int(max_steps)), int(max_steps)
    else:
        length = dict(num_train_epochs=epochs)
        total = math.ceil(epochs * steps_per_epoch) if steps_per_epoch else 500
    defaults = dict(
        output_dir=str(output_dir),
        logging_steps=max(1, total // 50),
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        use_cpu=device == "cpu",
        bf16=str(compute_dtype(device)) == "torch.bfloat16",
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        remove_unused_columns=False,
        **length,
    )
    return args_class(**{**defaults, **kwargs})


def energy_summary(session, measurements: Sequence) -> dict[str, Any]:
    """Energy, emissions and time summed over ``measurements`` of a carbon ``session``."""
    return {
        "energy_kwh": float(sum(m.energy_kwh for m in measurements)),
        "emissions_g": float(sum(m.emissions_g for m in measurements)),
        "duration_s": float(sum(m.duration_s for m in measurements)),
        "tasks": [m.task for m in measurements],
        "power_method": getattr(session, "power_method", None),
        "country": getattr(session, "country", None),
    }


def train_measured(
    trainer, task: str, *, carbon=None, progress: bool = True, per_epoch: bool = False, resume_from_checkpoint=None
) -> dict[str, Any]:
    """Run ``trainer.train()`` measured by codecarbon and summarise the run.

    Args:
        trainer: a ready ``transformers.Trainer`` (or a subclass such as
            sentence-transformers' trainer).
        task: the task name in the carbon session (and the run record).
        carbon: an open :class:`labkit.carbon.CarbonSession`; ``None`` measures in a private one.
        progress: when False, also silence the log lines Trainer prints without its tqdm bar.
        per_epoch: measure each epoch as its own task ``epoch_<k>``
            (:func:`labkit.carbon.epoch_callback`) instead of the run as ``task``.
        resume_from_checkpoint: a Trainer checkpoint folder to continue from (``None``: start).

    Returns:
        ``train_loss`` (mean of the last 10% of logged losses; Trainer's run mean when no step
        was logged), ``loss_curve`` ([step, loss] pairs), ``energy`` (:func:`energy_summary`),
        ``energy_kwh``, ``power_method`` and ``train_runtime_s``.
    """

    if not progress:  # Trainer prints every log dict when its tqdm bar is off
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    own = carbon is None
    session = CarbonSession() if own else carbon
    if own:
        session.__enter__()
    try:
        before = len(session.measurements)
        if per_epoch:
            trainer.add_callback(epoch_callback(session))
            result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        else:
            with session.task(task):
                result = trainer.train(resume_from_checkpoint=resume_from_checkpoint)
        measured = session.measurements[before:]
    finally:
        if own:
            session.__exit__(None, None, None)
    losses = [[h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h]
    tail = [loss for _, loss in losses[-max(1, len(losses) // 10) :]]
    energy = energy_summary(session, measured)
    return {
        "train_loss": float(sum(tail) / len(tail)) if tail else float(result.training_loss),
        "loss_curve": losses,
        "energy": energy,
        "energy_kwh": energy["energy_kwh"],
        "power_method": energy["power_method"],
        "train_runtime_s": float(result.metrics.get("train_runtime", float("nan"))),
    }


def checkpoint_at(steps: Sequence[int]):
    """A Trainer callback that saves a full checkpoint (model, optimiser, schedule, RNG) at each
    of ``steps``: Trainer's ``save_steps`` only knows regular intervals."""
    from transformers import TrainerCallback

    wanted = set(int(s) for s in steps)

    class CheckpointAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in wanted:
                control.should_save = True

    return CheckpointAt()


def save_model(model, tokenizer, folder: Path) -> None:
    """Save safetensors weights and the tokenizer in ``folder`` (the cache adds the metadata)."""
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
