"""Typed parameter schemas: every notebook parameter checked before any work starts.

A study declares its parameters once, next to its profiles (``labkit/<package>/profiles.py``)::

    SCHEMA = params.declare("scaling_laws", PROFILES, [
        Param("bootstrap", int, min=1, none_means="the profile's value",
              help="bootstrap resamples of the fit"),
        ...])

The same schema is checked twice: by ``labkit run`` in the parent process before any kernel
starts (:func:`check`), and inside the notebook by :func:`labkit.config.resolve` (so a value
typed into JupyterLab gets the same message). A bad value gets one :class:`ParameterError`
that names the parameter as the user wrote it and shows the accepted form::

    bootstrap: expected an integer >= 1, got 'abc'

Why not pydantic or jsonschema: both are fine validators, but their messages name model
fields and JSON pointers, not "the notebook parameter you passed with -p"; the accepted form
here is also what ``labkit params STUDY`` prints, so one small table serves both.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from labkit import studies
from labkit.device import device_problem
from labkit.errors import ParameterError

_TYPE_WORDS = {
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
    bool: ("true or false", "booleans"),
    dict: ("an object", "objects"),
    Path: ("the path of an existing file", "paths"),
}


@dataclass(frozen=True)
class Param:
    """One parameter: its type and the values it accepts.

    Args:
        name: the notebook parameter name (or a field name inside an object).
        type: ``int``, ``float``, ``str``, ``bool``, ``dict``, ``pathlib.Path`` (an existing
            file) or ``list[...]`` of one of those. Booleans are never integers; an integral
            float such as ``1e6`` is accepted for ``int``; NaN and infinities never pass.
        min, max: inclusive bounds (numbers, or each list element); ``exclusive_min`` makes
            ``min`` strict (``> 0``).
        choices: the allowed values (scalars, or each list element).
        none_means: what ``None`` / ``null`` means; ``None`` here means null is not accepted.
        help: one line for ``labkit params``.
        min_items: the fewest elements of a list.
        fields: for objects with fixed keys: each key's Param (an unknown key is an error).
        values: for objects with free keys: the Param every value must pass.
        check: extra rule for a value (each element of a list): returns a problem
            ("must ...") or None, or raises :class:`ParameterError`.
        parse: for a file parameter, ``"module:function"`` that loads and validates the file
            (raising a labkit error naming file, line and field); ``labkit run`` calls it
            before any kernel starts (:mod:`labkit.run.checks`), imported only then.
    """

    name: str
    type: Any
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = None
    none_means: str | None = None
    help: str = ""
    min_items: int = 0
    exclusive_min: bool = False
    fields: Mapping[str, Param] | None = None
    values: Param | None = None
    check: Callable[[Any], str | None] | None = None
    parse: str | None = None

    @property
    def item_type(self) -> Any:
        """The element type of a list parameter, else the type itself."""
        return get_args(self.type)[0] if self.is_list else self.type

    @property
    def is_list(self) -> bool:
        return get_origin(self.type) is list or self.type is list

    def _bounds(self) -> str:
        low = None if self.min is None else (f"> {self.min:g}" if self.exclusive_min else f">= {self.min:g}")
        high = None if self.max is None else f"<= {self.max:g}"
        if low and high and not self.exclusive_min:
            return f" between {self.min:g} and {self.max:g}"
        return "".join(f" {b}" for b in (low, high) if b)

    def _scalar_words(self, plural: bool) -> str:
        base = self.item_type if self.item_type in _TYPE_WORDS else str
        word = _TYPE_WORDS[base][1 if plural else 0]
        if self.choices is not None:
            return f"{'one' if not plural else 'each one'} of {', '.join(map(_show, self.choices))}"
        if base in (int, float):
            word += self._bounds()
        if base is dict and self.fields:
            word += " with keys " + ", ".join(self.fields)
        return word

    def expected(self) -> str:
        """The accepted form in words: ``an integer >= 1``, ``a non-empty list of strings``."""
        if not self.is_list:
            return self._scalar_words(plural=False)
        size = {0: "a list", 1: "a non-empty list"}.get(self.min_items, f"a list of at least {self.min_items}")
        return f"{size} of {self._scalar_words(plural=True)}"

    def type_label(self) -> str:
        """Short type for tables: ``int >= 1``, ``list[str]``, ``path``, ``dict``."""
        names = {int: "int", float: "float", str: "str", bool: "bool", dict: "dict", Path: "path"}
        inner = names.get(self.item_type, "any")
        text = f"list[{inner}]" if self.is_list else inner
        if self.choices is not None:
            text += " in {" + ", ".join(map(str, self.choices)) + "}"
        elif self.item_type in (int, float):
            text += self._bounds()
        return text + (" | None" if self.none_means is not None else "")


def _show(value: Any) -> str:
    """A value as the user would type it: plain numbers and strings, never ``np.float64(...)``."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (list, dict)):
        try:
            value = value.item()  # numpy scalars
        except (TypeError, ValueError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return repr(value)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(where: str, param: Param, value: Any, why: str | None = None) -> ParameterError:
    return ParameterError(f"{where}: expected {why or param.expected()}, got {_show(value)}")


def _check_scalar(where: str, param: Param, value: Any) -> Any:
    kind = param.item_type
    if kind is bool:
        if not isinstance(value, bool):
            raise _fail(where, param, value)
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, param, value)
        if not math.isfinite(value):
            raise _fail(
                where,
                param,
                value,
                f"a finite {param.expected().removeprefix('a ')}" if kind is float else None,
            )
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise _fail(where, param, value)
            value = int(value)
        low_bad = param.min is not None and (value <= param.min if param.exclusive_min else value < param.min)
        if low_bad or (param.max is not None and value > param.max):
            raise _fail(where, param, value)
    elif kind is Path:
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise _fail(where, param, value)
        path = Path(value).expanduser()
        if not path.is_file():
            reason = "is a folder" if path.is_dir() else "does not exist"
            raise ParameterError(
                f"{where}: expected the path of an existing file, got "
                f"{_show(str(value))}, which {reason} (relative paths start at "
                f"{Path.cwd().name or '/'}/)"
            )
        value = str(path.resolve())
    elif kind is str:
        if not isinstance(value, str):
            raise _fail(where, param, value)
    elif kind is dict:
        if not isinstance(value, dict):
            raise _fail(where, param, value)
        value = _check_object(where, param, value)
    if param.choices is not None and value not in param.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in param.choices], n=1)
        raise ParameterError(
            f"{where}: expected {param._scalar_words(False)}, got {_show(value)}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
        )
    if param.check is not None:
        try:
            problem = param.check(value)
        except ParameterError as exc:
            raise ParameterError(f"{where}: {exc}") from None
        if problem:
            raise ParameterError(f"{where}: {problem}, got {_show(value)}")
    return value


def _check_object(where: str, param: Param, value: dict) -> dict:
    out = {}
    for key, item in value.items():
        if param.fields is not None:
            if key not in param.fields:
                hint = difflib.get_close_matches(str(key), list(param.fields), n=1)
                raise ParameterError(
                    f"{where}: unknown key {key!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (keys: {', '.join(param.fields)})"
                )
            out[key] = validate(param.fields[key], item, f"{where}.{key}")
        elif param.values is not None:
            out[key] = validate(param.values, item, f"{where}[{key!r}]")
        else:
            out[key] = item
    return out


def validate(param: Param, value: Any, where: str | None = None) -> Any:
    """``value`` checked against ``param`` (and normalised: ``1e6`` -> ``1000000``, a path ->
    its absolute form); a :class:`ParameterError` naming ``where`` (default: the name)."""
    where = where or param.name
    if value is None:
        if param.none_means is None:
            raise _fail(where, param, value)
        return None
    if param.is_list:
        if not isinstance(value, (list, tuple)):
            raise _fail(where, param, value)
        if len(value) < param.min_items:
            raise _fail(where, param, value)
        element = Param(
            param.name,
            param.item_type,
            param.min,
            param.max,
            param.choices,
            None,
            exclusive_min=param.exclusive_min,
            fields=param.fields,
            values=param.values,
            check=param.check,
        )
        return [_check_scalar(f"{where}[{i}]", element, v) for i, v in enumerate(value)]
    return _check_scalar(where, param, value)


@dataclass
class Schema:
    """Every parameter of one study notebook, plus its profile table (for defaults)."""

    study: str
    profiles: Mapping[str, Mapping[str, Any]]
    params: dict[str, Param] = field(default_factory=dict)

    def check(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Each given value validated (unknown names are errors, with a suggestion)."""
        out = {}
        for key, value in parameters.items():
            if key not in self.params:
                hint = difflib.get_close_matches(key, list(self.params), n=1)
                raise ParameterError(
                    f"{self.study} has no parameter {key!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else "")
                    + f" (its parameters: {', '.join(self.params)}; "
                    f"see `labkit params {self.study}`)"
                )
            out[key] = validate(self.params[key], value)
        return out


def _country_problem(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]{3}", value) else "must be a 3-letter upper-case ISO code such as 'USA'"


#: the ``country`` parameter of the studies that measure energy (codecarbon's ISO-3 code)
COUNTRY = Param(
    "country",
    str,
    check=_country_problem,
    help="ISO-3 country of the grid for the CO2 estimate (codecarbon)",
)

#: the profiles every study has (sizes only, never code paths)
PROFILE_NAMES = ("smoke", "default", "paper")
PROFILE = Param(
    "profile",
    str,
    choices=PROFILE_NAMES,
    none_means="$LABKIT_PROFILE, else 'default'",
    help="sizes to use",
)
SEED = Param("seed", int, min=0, help="seed for python, numpy and torch")
# the device rule itself (availability) runs in the kernel: labkit.device.use in begin
DEVICE = Param(
    "device",
    str,
    none_means="$LABKIT_DEVICE, else CUDA if present, else CPU",
    check=device_problem,
    help="where models run",
)
MIXED_PRECISION = Param(
    "mixed_precision",
    bool,
    none_means="bf16 where the device supports it",
    help="false: float32 everywhere",
)
#: the parameters every study notebook has (``seed``, ``device`` and ``mixed_precision`` go to
#: :func:`labkit.notebook.begin` itself, not through the profile table)
COMMON = (PROFILE, SEED, DEVICE, MIXED_PRECISION)

_SCHEMAS: dict[str, Schema] = {}


def declare(study: str, profiles: Mapping[str, Mapping[str, Any]], params: Sequence[Param]) -> Schema:
    """Register a study's schema (``profile`` and ``seed`` are added); called once in its
    profiles module. Declaring the same study again (a module re-imported) replaces it."""
    table = {p.name: p for p in COMMON}
    for param in params:
        if param.name in table:
            raise ValueError(f"{study}: parameter {param.name!r} declared twice")
        table[param.name] = param
    schema = Schema(study, profiles, table)
    _SCHEMAS[study] = schema
    return schema


def _load_profiles_module(package: str) -> None:
    """Run ``<package>/profiles.py`` without importing the package itself (``labkit.anchor``
    pulls in torch: 9 s on 2 cores, too long for a parameter check or ``labkit params``)."""
    name = f"{package}.profiles"
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return
    if spec is None:
        return
    path = Path(list(spec.submodule_search_locations)[0]) / "profiles.py" if spec.submodule_search_locations else None
    if package in sys.modules or path is None or not path.is_file():
        importlib.import_module(name if path is not None and path.is_file() else package)
        return
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]


def schema_for(study: str) -> Schema | None:
    """The declared schema of a study id, or None (an external study that declares none)."""
    if study not in _SCHEMAS:
        try:
            entry = studies.get(study)
        except ParameterError:
            return None
        if entry.package:
            _load_profiles_module(entry.package)
    return _SCHEMAS.get(study)


def schema_for_profiles(profiles: Mapping[str, Mapping[str, Any]]) -> Schema | None:
    """The schema declared with this very profile table (what :func:`labkit.config.resolve`
    gets from a notebook), or None."""
    for schema in reversed(list(_SCHEMAS.values())):
        if schema.profiles is profiles:
            return schema
    return None


def check(study_id: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``labkit run -p`` values for one study before any kernel starts.

    Returns the values to pass to the notebook: validated and normalised (integral floats to
    int, file paths made absolute so the kernel, which starts in the notebook's folder, finds
    them). A study without a declared schema gets its values back unchanged.

    >>> check("scaling_laws", {"bootstrap": 20, "profile": "smoke"})
    {'bootstrap': 20, 'profile': 'smoke'}
    >>> check("scaling_laws", {"bootstrap": "abc"})
    Traceback (most recent call last):
    labkit.errors.ParameterError: bootstrap: expected an integer >= 1, got 'abc'
    """
    schema = schema_for(study_id)
    if schema is None:
        return dict(parameters)
    return schema.check(parameters)
