"""The scaling explorer draws Kausik's U(D) band against D, before and after beta moves.

In JupyterLab the band was drawn against the point index (x = 1..60) while the untouched D line
spanned 1M-1T tokens: the slider restyled only the band's y, and its numpy arrays travelled as
binary buffers. These tests build the explorer on smoke-profile results (a real smoke-sized fit
and bootstrap of the Chinchilla points, or of synthetic points when the data mirror is absent),
move the slider, and check both the figure and every message sent to the browser.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ipywidgets")
import plotly.graph_objects as go  # noqa: E402
from plotly.serializers import _py_to_js  # noqa: E402

from labkit.explore import MAIN_CONTROL_CLASS  # noqa: E402
from labkit.records import RECORD_NAME, RECORD_VERSION  # noqa: E402


def _points() -> pd.DataFrame:
    import labkit.data as data
    from labkit.errors import LabkitError
    from labkit.scaling.fit import drop_highest_loss, load_points

    try:
        return drop_highest_loss(load_points(data.load("chinchilla")[["N", "D", "loss"]]), 5)
    except LabkitError:  # no mirror: Chinchilla-like synthetic points, same code path
        N, D = (a.ravel() for a in np.meshgrid(np.geomspace(7e7, 1.6e10, 6), np.geomspace(5e9, 5e11, 6)))
        loss = 1.69 + 406.4 / N**0.34 + 410.7 / D**0.28
        noise = np.exp(0.01 * np.random.default_rng(0).standard_normal(len(N)))
        return pd.DataFrame({"N": N, "D": D, "loss": loss * noise})


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    """``figures/scaling_laws`` as the smoke profile writes it (record + bootstrap table)."""
    from labkit.scaling import PROFILES, study

    smoke = PROFILES["smoke"]
    rep = study.replication(
        _points(), starts=smoke["fit_starts"], n_bootstrap=smoke["bootstrap"], seed=0, n_jobs=1, with_kaplan=False
    )
    root = tmp_path_factory.mktemp("figures")
    folder = root / "scaling_laws"
    folder.mkdir()
    (folder / RECORD_NAME).write_text(json.dumps({"record_version": RECORD_VERSION, "study": "scaling_laws"}))
    rep.samples.to_csv(folder / "bootstrap_params.csv", index=False)
    return root


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def test_band_is_drawn_against_D_before_and_after_beta_moves(smoke_results):
    from labkit.explore import scaling

    ui = scaling.explorer(smoke_results)
    fig = next(w for w in walk(ui) if isinstance(w, go.FigureWidget))
    control = next(w for w in walk(ui) if MAIN_CONTROL_CLASS in getattr(w, "_dom_classes", ()))
    sent = []
    # batch_update sends one Plotly.update (style_data), a lone assignment a Plotly.restyle
    for trait, data_key, traces_key in (
        ("_py2js_update", "style_data", "style_traces"),
        ("_py2js_restyle", "restyle_data", "restyle_traces"),
    ):
        fig.observe(
            lambda change, d=data_key, t=traces_key: (
                change.new and sent.append((change.new[d], fig._normalize_trace_indexes(change.new[t])))
            ),
            names=trait,
        )

    def band_x_of_widget_state():
        # what the browser receives on display: plotly's own serializer over the widget data
        fig._repr_mimebundle_()
        wire = _py_to_js(fig._widget_data, None)
        return [wire[i].get("x") for i in scaling.BAND_TRACES]

    n = len(scaling.TOKENS)
    for i in scaling.BAND_TRACES:
        assert np.allclose(fig.data[i].x, scaling.TOKENS)
        assert not np.allclose(fig.data[i].x, np.arange(1, n + 1))
    for x in band_x_of_widget_state():
        assert isinstance(x, (list, tuple)), "band x must go to the browser as a plain list"
        assert np.allclose(x, scaling.TOKENS)

    before = [np.array(fig.data[i].y) for i in scaling.BAND_TRACES]
    control.value = round(min(control.max, control.value + 0.1), 2)
    after = [np.array(fig.data[i].y) for i in scaling.BAND_TRACES]
    assert not np.allclose(before[0], after[0]), "the band did not move with beta"

    band_updates = [(data, traces) for data, traces in sent if set(traces) & set(scaling.BAND_TRACES)]
    assert band_updates, "moving beta sent no update of the band"
    for data, traces in band_updates:
        xs = data.get("x", [])
        for k, trace in enumerate(traces if xs else []):
            x = xs[k % len(xs)]
            # an update may leave x alone (no key) or send D itself; an entry that is not the
            # D grid (plotly's "undefined" placeholder, an index range) is what broke the band
            if trace in scaling.BAND_TRACES:
                assert isinstance(x, (list, tuple)) and np.allclose(x, scaling.TOKENS), (
                    f"band trace {trace} updated with x = {x!r}"
                )
        for ys in data.get("y", []):
            assert isinstance(ys, (list, tuple)), "band y must go to the browser as a plain list"
    for i in scaling.BAND_TRACES:
        assert np.allclose(fig.data[i].x, scaling.TOKENS)
    for x in band_x_of_widget_state():
        assert np.allclose(x, scaling.TOKENS)
    low, high = (np.array(fig.data[i].y) for i in (scaling.BAND_TRACES[1], scaling.BAND_TRACES[0]))
    assert np.all(low < high) and np.all(high <= scaling.TOKENS * (1 + 1e-12))
