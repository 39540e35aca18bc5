"""Study 1's steps (``notebooks/embeddings_medical.ipynb``): pairs, systems, tables, figures.

A *system* is one way of scoring a pair: zero-shot cosine of a provider's embeddings, the same
after a Siamese head, or a fine-tuned encoder. Every system is evaluated the same way (threshold
on the training doctors, metrics on the held-out doctors, bootstrap CIs) and lands as one score
column in ``pair_scores.csv`` and one row in ``thresholds.csv``, the explorer's inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from labkit.embeddings import similarity
from labkit.embeddings.providers import Embedder, make_embedder
from labkit.embeddings.siamese import FineTuneConfig, HeadConfig, finetune_encoder, train_head
from labkit.errors import LabkitError, ParameterError
from labkit.figures import PALETTE
from labkit.timing import timed


def load_pairs(cfg: dict[str, Any], seed: int = 0) -> pd.DataFrame:
    """MQP (or the user's pair CSV), optionally subsampled per doctor, with a ``split`` column."""
    import labkit.data as data

    pairs = (data.parse_pairs_csv(cfg["pairs_csv"]) if cfg.get("pairs_csv") else data.load("mqp"))
    pairs = pairs.rename_axis("row").reset_index()
    if cfg["max_pairs"]:
        per_doctor = max(2, int(np.ceil(cfg["max_pairs"] / pairs["dr_id"].nunique())))
        pairs = pairs.groupby("dr_id", sort=False).head(per_doctor + per_doctor % 2)
    pairs = pairs.reset_index(drop=True)
    pairs["split"] = similarity.split_by_doctor(pairs, cfg["test_doctors"], cfg["val_doctors"], seed)
    return pairs


@dataclass
class Systems:
    """Scores per system name, what kind each is, energy, and providers that did not run.

    ``skipped`` holds one entry per provider that produced no scores: ``status`` is
    ``"skipped"`` (not available: no key, no client) or ``"failed"`` (it raised while
    embedding; ``reason`` then starts with ``"failed: "``). :meth:`warnings` turns them, and
    any ``notes``, into messages for ``record.warn``.
    """

    scores: dict[str, np.ndarray] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    inference: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, str]]:
        """The providers that raised while embedding (a subset of ``skipped``)."""
        return [s for s in self.skipped if s.get("status") == "failed"]

    def warnings(self) -> list[str]:
        """One message per provider that did not run, and per note, for ``record.warn``."""
        out = []
        for s in self.skipped:
            if s.get("status") == "failed":  # "failed: ..." makes `labkit run` report "partial"
                cause = s["reason"].removeprefix("failed: ")
                out.append(f"failed: {s['spec']}: {cause} (its row is marked failed; the other "
                           "systems ran)")
            else:
                out.append(f"skipped {s['spec']}: {s['reason']}")
        return out + list(self.notes)


def _cause(exc: BaseException) -> str:
    """A one-line cause: labkit's own message as is, a library's prefixed by its type."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return text if isinstance(exc, LabkitError) and text else f"{type(exc).__name__}: {text}"


def _build_all(specs: Sequence[str], out: Systems) -> list[tuple[str, Embedder]]:
    """Every embedder built before any model loads, so a malformed spec fails at once naming
    its ``models`` entry; one that cannot be built for another reason (an unknown model) is
    recorded as failed and left out."""
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        raise ParameterError(f"models must be a list of embedder specs, got {specs!r}")
    built = []
    for i, spec in enumerate(specs):
        try:
            built.append((spec, make_embedder(spec)))
        except ParameterError as exc:
            raise ParameterError(f"models[{i}]: {exc}") from None
        except Exception as exc:  # noqa: BLE001  one bad model must not stop the others
            out.skipped.append({"system": str(spec), "spec": str(spec), "status": "failed",
                                "reason": f"failed: {_cause(exc)}"})
    return built


def embed_pairs(pairs: pd.DataFrame, specs: Sequence[str], *, carbon=None,
                energy_texts: int = 1000) -> Systems:
    """Zero-shot cosine per provider; energy per 1,000 embeddings for local models.

    A provider that is not available is skipped; one that raises while being built or while
    embedding (an API outage, a model that will not load) becomes a ``failed`` entry with its
    cause, and the other providers still run. Malformed specs raise :class:`ParameterError`
    before any work. Energy is measured on a fresh, uncached embedding of ``energy_texts``
    texts (the cache would otherwise make a re-run look free).
    """
    out = Systems()
    texts = list(dict.fromkeys(list(pairs["question_1"]) + list(pairs["question_2"])))
    for spec, embedder in _build_all(specs, out):
        name = embedder.name
        ok, reason = embedder.available()
        if not ok:
            out.skipped.append({"system": name, "spec": spec, "status": "skipped",
                                "reason": reason})
            continue
        try:
            embedder.fit(texts)  # unsupervised: question texts only, labels never seen
            a = embedder.embed(list(pairs["question_1"]))
            b = embedder.embed(list(pairs["question_2"]))
        except Exception as exc:  # noqa: BLE001  one provider's failure must not cost the rest
            out.skipped.append({"system": name, "spec": spec, "status": "failed",
                                "reason": f"failed: {_cause(exc)}"})
            continue
        out.scores[name] = similarity.cosine(a, b)
        out.kind[name] = "zero-shot cosine"
        out.embeddings[name] = (a, b)
        if embedder.is_local and carbon is not None and energy_texts:
            try:
                out.inference.append(_inference_energy(spec, name, texts[:energy_texts],
                                                       texts, carbon))
            except Exception as exc:  # noqa: BLE001  the scores stand; only energy is missing
                out.notes.append(f"{spec}: inference energy not measured ({_cause(exc)})")
    return out


def _inference_energy(spec: str, name: str, sample: list[str], corpus: list[str],
                      carbon) -> dict[str, Any]:
    """Seconds, energy and emissions per 1,000 texts of a fresh, uncached embedder."""
    fresh = make_embedder(spec, cache=False).fit(corpus)
    fresh.embed(sample[:8], progress=False)  # load the model outside the measurement
    with carbon.task(f"inference {name}") as ms:
        _, seconds = timed(lambda: fresh.embed(sample, progress=False))  # syncs the device
    m = ms[-1]
    return {"system": name, "texts": len(sample),
            "seconds_per_1000": 1000 * seconds / len(sample),
            "energy_kwh_per_1000": 1000 * m.energy_kwh / len(sample),
            "emissions_g_per_1000": 1000 * m.emissions_g / len(sample),
            "power_method": m.power_method}


def add_heads(systems: Systems, pairs: pd.DataFrame, head: dict[str, Any], *, carbon=None,
              seed: int = 0) -> None:
    """A Siamese head on every provider's frozen embeddings (``<name>+siamese``)."""
    labels, split = pairs["label"].to_numpy(), pairs["split"].to_numpy()
    for name, (a, b) in list(systems.embeddings.items()):
        result = train_head(a, b, labels, split, HeadConfig(**{**head, "seed": seed}),
                            carbon=carbon, name=f"{name}+siamese")
        label = f"{name}+siamese"
        systems.scores[label] = result.scores
        systems.kind[label] = "Siamese head"
        for row in result.epochs:
            systems.epochs.append({"system": label, **row, "best_epoch": result.best_epoch})


def add_finetuned(systems: Systems, pairs: pd.DataFrame, base: str, epochs: int, *, carbon=None,
                  seed: int = 0) -> dict[str, Any]:
    """Full Siamese fine-tune of ``base`` on the training doctors' pairs (``<name>-finetuned``)."""
    train = pairs[pairs["split"] == "train"]
    before = len(carbon.measurements) if carbon is not None else 0
    folder, metrics = finetune_encoder(train["question_1"], train["question_2"], train["label"],
                                       FineTuneConfig(base_model=base, epochs=epochs, seed=seed),
                                       carbon=carbon)
    tuned = make_embedder(f"st:{folder}")
    label = f"{base.split('/')[-1].replace('all-', '')}-finetuned"
    a, b = tuned.embed(list(pairs["question_1"])), tuned.embed(list(pairs["question_2"]))
    systems.scores[label] = similarity.cosine(a, b)
    systems.kind[label] = "fine-tuned encoder"
    if carbon is not None:
        for k, m in enumerate(carbon.measurements[before:], start=1):
            if m.task.startswith("epoch_"):
                systems.epochs.append({"system": label, "epoch": k, "seconds": m.duration_s,
                                       "energy_kwh": m.energy_kwh, "emissions_g": m.emissions_g,
                                       "best_epoch": epochs})
    return metrics


def results_table(systems: Systems, pairs: pd.DataFrame, n_resamples: int, seed: int = 0
                  ) -> pd.DataFrame:
    """One row per system: threshold, held-out accuracy / F1 / ROC-AUC with 95% CIs, energy.

    ``status`` is ``"ok"``, ``"skipped: <reason>"`` or ``"failed: <cause>"``; rows that did not
    run repeat it in ``kind`` and have no metrics.
    """
    labels, split = pairs["label"].to_numpy(), pairs["split"].to_numpy()
    energy = pd.DataFrame(systems.epochs)
    rows = []
    for name, scores in systems.scores.items():
        r = similarity.evaluate_system(labels, scores, split, n_resamples=n_resamples, seed=seed)
        mine = energy[energy["system"] == name] if len(energy) else energy
        rows.append({"system": name, "kind": systems.kind[name], "status": "ok", **r,
                     "training_epochs": int(len(mine)),
                     "training_energy_kwh": float(mine["energy_kwh"].sum()) if len(mine) else 0.0,
                     "training_emissions_g": float(mine["emissions_g"].sum()) if len(mine) else 0.0})
    for s in systems.skipped:
        status = s["reason"] if s.get("status") == "failed" else f"skipped: {s['reason']}"
        rows.append({"system": s["system"], "kind": status, "status": status})
    return pd.DataFrame(rows)


def paired_table(systems: Systems, pairs: pd.DataFrame, results: pd.DataFrame, reference: str,
                 n_resamples: int, seed: int = 0) -> pd.DataFrame:
    """Every system against ``reference`` on the same held-out pairs (paired bootstrap)."""
    test = pairs["split"].to_numpy() == "test"
    y = pairs["label"].to_numpy()[test]
    thresholds = results.set_index("system")["threshold"]
    rows = []
    for name, scores in systems.scores.items():
        if name == reference:
            continue
        rows.append({"system": name, "versus": reference, **similarity.paired_test(
            y, scores[test], systems.scores[reference][test], thresholds[name],
            thresholds[reference], n_resamples=n_resamples, seed=seed)})
    return pd.DataFrame(rows)


def pair_scores(pairs: pd.DataFrame, systems: Systems) -> pd.DataFrame:
    """The explorer's ``pair_scores.csv``: pair metadata plus one score column per system."""
    frame = pairs[["row", "dr_id", "split", "label", "question_1", "question_2"]].copy()
    for name, scores in systems.scores.items():
        frame[name] = scores
    return frame


def thresholds(results: pd.DataFrame) -> pd.DataFrame:
    """The explorer's ``thresholds.csv``."""
    done = results.dropna(subset=["threshold"])
    return done[["system", "threshold", "accuracy"]].rename(columns={"accuracy": "heldout_accuracy"})


# --------------------------------------------------------------------------- figures

def distribution_figure(pairs: pd.DataFrame, systems: Systems) -> go.Figure:
    """Held-out similarity by label for each system (violins), threshold-free."""
    test = pairs["split"] == "test"
    fig = go.Figure()
    for label, colour, side in ((1, PALETTE[2], "positive"), (0, PALETTE[3], "negative")):
        xs, ys = [], []
        for name, scores in systems.scores.items():
            keep = test & (pairs["label"] == label)
            xs += [name] * int(keep.sum())
            ys += list(np.asarray(scores)[keep.to_numpy()])
        fig.add_trace(go.Violin(x=xs, y=ys, side=side, line_color=colour, meanline_visible=True,
                                name="similar (1)" if label else "different (0)", points=False,
                                scalemode="width", width=0.9))
    fig.update_layout(violingap=0.05, violinmode="overlay", yaxis_title="similarity score",
                      title="Held-out pair scores by label, per system (doctor-wise split)")
    return fig


def _padded_range(values: np.ndarray, kind: str, left: float = 0.08, right: float = 0.08) -> list[float]:
    """An axis range around ``values`` (log10 units on a log axis) with room for point labels."""
    v = np.log10(values) if kind == "log" else np.asarray(values, dtype=float)
    lo, hi = float(np.min(v)), float(np.max(v))
    span = hi - lo if hi > lo else (0.5 if kind == "log" else max(abs(hi) * 0.2, 1e-9))
    return [lo - left * span, hi + right * span]


def pareto_figure(results: pd.DataFrame, inference: pd.DataFrame, power_method: str) -> go.Figure:
    """Held-out accuracy against the energy it took (training + embedding 1,000 texts).

    Points carry a number and the legend maps numbers to systems: system names as point labels
    collided with each other and ran off the canvas. The energy axis is log only where the
    systems differ by decades (:func:`labkit.figures.axis_type_for`).
    """
    from labkit.figures import axis_type_for, label_positions

    frame = results.dropna(subset=["accuracy"]).copy()
    inf = inference.set_index("system")["energy_kwh_per_1000"] if len(inference) else pd.Series(dtype=float)
    base = frame["system"].str.replace(r"(\+siamese|-finetuned)$", "", regex=True)
    frame["energy_wh"] = 1000 * (frame["training_energy_kwh"].fillna(0)
                                 + base.map(inf).fillna(0).to_numpy())
    frame = frame[frame["energy_wh"] > 0].reset_index(drop=True)
    q, c = frame["accuracy"].to_numpy(), frame["energy_wh"].to_numpy()
    front = [not np.any((q >= q[i]) & (c <= c[i]) & ((q > q[i]) | (c < c[i]))) for i in range(len(q))]
    kind = axis_type_for(c) if len(c) else "linear"
    places = label_positions(np.log10(c) if kind == "log" else c, q)
    fig = go.Figure()
    kinds = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(sorted(frame["kind"].unique()))}
    for number, row in frame.iterrows():
        fig.add_trace(go.Scatter(
            x=[row["energy_wh"]], y=[row["accuracy"]], mode="markers+text", text=[str(number + 1)],
            textposition=places[number], textfont=dict(size=12), cliponaxis=False,
            name=f"{number + 1} {row['system']} ({row['kind']})", legendgroup=row["kind"],
            marker=dict(color=kinds[row["kind"]], size=11, symbol="star" if front[number] else "circle"),
            error_y=dict(type="data", symmetric=False, array=[row["accuracy_high"] - row["accuracy"]],
                         arrayminus=[row["accuracy"] - row["accuracy_low"]])))
    on = frame[front].sort_values("energy_wh")
    fig.add_trace(go.Scatter(x=on["energy_wh"], y=on["accuracy"], mode="lines",
                             line=dict(color="grey", dash="dash"), name="Pareto front (stars)"))
    fig.update_xaxes(type=kind, title="energy (Wh): training + embedding 1,000 texts"
                     + (", log scale" if kind == "log" else ""))
    if len(c):
        fig.update_xaxes(range=_padded_range(c, kind, left=0.1, right=0.12))
    fig.update_yaxes(title="held-out accuracy (95% CI)")
    fig.update_layout(title=f"Accuracy against energy, with the Pareto front<br><sup>power: "
                            f"{power_method}</sup>",
                      legend=dict(font=dict(size=11), tracegroupgap=2))
    return fig


def epoch_figure(epochs: pd.DataFrame, power_method: str) -> go.Figure:
    """Energy (mWh) and CO2 (mg) of every training epoch, per system.

    Fine-tuning an encoder costs decades more per epoch than a Siamese head; a log axis (chosen
    from the data by :func:`labkit.figures.axis_type_for`) keeps the heads' bars visible.
    """
    from labkit.figures import axis_type_for

    fig = go.Figure()
    for i, (name, sub) in enumerate(epochs.groupby("system", sort=False)):
        fig.add_trace(go.Bar(x=[f"{name} · {int(e)}" for e in sub["epoch"]],
                             y=1e6 * sub["energy_kwh"], name=name,
                             marker_color=PALETTE[i % len(PALETTE)],
                             customdata=1000 * sub["emissions_g"],
                             hovertemplate="%{x}<br>%{y:.3g} mWh<br>%{customdata:.3g} mg CO2eq"))
    values = 1e6 * epochs["energy_kwh"].to_numpy(dtype=float) if len(epochs) else np.empty(0)
    kind = axis_type_for(values)
    if kind == "log":  # bars start at the axis floor: put it a good way below the smallest bar
        positive = values[values > 0]
        low, high = np.floor(np.log10(positive.min()) - 0.3), np.log10(positive.max())
        fig.update_yaxes(type="log", range=[low, high + 0.1 * (high - low)])
    fig.update_layout(yaxis_title="energy per epoch (mWh" + (", log scale)" if kind == "log" else ")"),
                      xaxis_title="system · epoch", showlegend=True,
                      title=f"Energy per training epoch<br><sup>{power_method}</sup>")
    return fig
