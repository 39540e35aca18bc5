"""Profiles and parameters shared by every notebook.

A notebook's ``parameters`` cell holds flat, JSON-typed values: ``profile`` plus optional
overrides left at ``None``. The next cell calls :func:`resolve` so that derived values are
computed *after* papermill has injected its overrides (a papermill pitfall: values derived
inside the parameters cell keep their defaults).

Profiles set sizes, never code paths: ``smoke`` (CI, seconds to a few minutes), ``default``
(``labkit run``), ``paper`` (full size, big machine).
"""

from __future__ import annotations

import difflib
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labkit.errors import ParameterError
from labkit.params import PROFILE_NAMES, schema_for_profiles, validate


def active_profile(profile: str | None = None) -> str:
    """The profile to use: the argument, else ``$LABKIT_PROFILE``, else ``"default"``."""
    name = profile or os.environ.get("LABKIT_PROFILE") or "default"
    if name not in PROFILE_NAMES:
        raise ParameterError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILE_NAMES)}"
            + (" (from $LABKIT_PROFILE)" if not profile else "")
        )
    return name


def resolve(profiles: Mapping[str, Mapping[str, Any]], profile: str | None = None, **overrides: Any) -> dict[str, Any]:
    """Merge a study's profile table with explicit overrides (``None`` means "not given").

    >>> table = {"smoke": {"n": 10}, "default": {"n": 100}, "paper": {"n": 1000}}
    >>> resolve(table, "smoke", n=None)
    {'n': 10, 'profile': 'smoke'}
    >>> resolve(table, "smoke", n=7)["n"]
    7

    A table declared with a schema (:func:`labkit.params.declare`) has each override checked:

    >>> from labkit.scaling.profiles import PROFILES
    >>> resolve(PROFILES, "smoke", bootstrap="abc")
    Traceback (most recent call last):
    labkit.errors.ParameterError: bootstrap: expected an integer >= 1, got 'abc'
    """
    name = active_profile(profile)
    if name not in profiles:
        raise ParameterError(f"this study defines no {name!r} profile (has: {sorted(profiles)})")
    merged = dict(profiles[name])
    known = set().union(*(p.keys() for p in profiles.values()))
    # the study's typed schema (declared next to this very table), so a value typed into
    # JupyterLab gets the same one-line error as `labkit run -p` does before any kernel starts

    schema = schema_for_profiles(profiles)
    for key, value in overrides.items():
        if value is None:
            continue
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            raise ParameterError(f"unknown parameter {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        if schema is not None and key in schema.params:
            checked = validate(schema.params[key], value)
            # a path stays as the user wrote it (the record shows that, not this machine's root)
            value = value if schema.params[key].type is Path else checked
        merged[key] = value
    merged["profile"] = name
    return merged


def set_seed(seed: int) -> dict[str, int]:
    """Seed python, numpy and torch (if present); return the seeds for the run record."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
    return {"python": seed, "numpy": seed, "torch": seed}
