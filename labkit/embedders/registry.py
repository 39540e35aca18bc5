"""One table of embedding providers, filled by the providers themselves.

Each provider class declares, in one decorator next to its code, the spec prefix it answers to,
the spec forms it accepts and a one-line description::

    @register_provider("st", forms="st:<model>", doc="sentence-transformers model")
    class SentenceTransformerEmbedder(Embedder): ...

Everything a user reads about specs (the providers module's docstring, ``SPEC_FORMS``, the list
in an unknown-spec error, :func:`provider_help`) is generated from this table, so a new provider
is one class and can never be missing from the help. Parsing a spec happens here too, so a typo
gets a "did you mean" before any model is loaded.
"""

from __future__ import annotations

import difflib
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.embedders.base import Embedder
from labkit.errors import ParameterError

_PREFIX = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(frozen=True)
class ProviderInfo:
    """One registered provider: its spec prefix, forms, description and class."""

    prefix: str
    forms: tuple[str, ...]
    doc: str
    cls: type[Embedder]
    argument_required: bool = True
    default_argument: str = ""

    @property
    def is_local(self) -> bool:
        return bool(self.cls.is_local)


_REGISTRY: dict[str, ProviderInfo] = {}


def register_provider(
    prefix: str, *, forms: str | Sequence[str], doc: str, argument_required: bool = True, default_argument: str = ""
) -> Callable[[type[Embedder]], type[Embedder]]:
    """Class decorator: make ``prefix:<argument>`` specs build this :class:`Embedder` through
    its :meth:`~labkit.embedders.base.Embedder.from_spec`. Stack it to register one class
    under several prefixes (``hf-cls`` and ``hf-mean``). With ``argument_required=False`` the
    bare ``prefix`` is a valid spec and gets ``default_argument``."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"provider prefix {prefix!r} must be lower-case letters, digits, '-'")
    form_tuple = (forms,) if isinstance(forms, str) else tuple(forms)
    if not form_tuple or not all(f.startswith(prefix) for f in form_tuple):
        raise ValueError(f"provider {prefix!r}: every form must start with the prefix")

    def decorate(cls: type[Embedder]) -> type[Embedder]:
        if not (isinstance(cls, type) and issubclass(cls, Embedder)):
            raise TypeError(f"provider {prefix!r} must be an Embedder subclass, got {cls!r}")
        old = _REGISTRY.get(prefix)
        if old is not None and old.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"provider prefix {prefix!r} is already registered by {old.cls.__qualname__}")
        _REGISTRY[prefix] = ProviderInfo(
            prefix, form_tuple, " ".join(doc.split()), cls, argument_required, default_argument
        )
        return cls

    return decorate


def registered() -> tuple[ProviderInfo, ...]:
    """Every provider, in registration order (local models first, then APIs)."""
    return tuple(_REGISTRY.values())


def spec_forms() -> tuple[str, ...]:
    """Every accepted spec form, e.g. ``("st:<model>", ..., "google:<model>[@dims]")``."""
    return tuple(form for info in _REGISTRY.values() for form in info.forms)


def provider_help(*, rst: bool = False, width: int = 96) -> str:
    """The table of spec forms and what each is; ``rst=True`` gives a reStructuredText table
    (the providers module's docstring), otherwise aligned plain text (help output)."""
    rows = [(" | ".join(f"``{f}``" if rst else f for f in info.forms), info.doc) for info in _REGISTRY.values()]
    left = max((len(form) for form, _ in rows), default=10) + 2
    lines = []
    for form, doc in rows:
        wrapped = textwrap.wrap(doc, max(30, width - left), break_on_hyphens=False, break_long_words=False) or [""]
        lines.append(form.ljust(left) + wrapped[0])
        lines += [" " * left + more for more in wrapped[1:]]
    if rst:
        rule = "=" * (left - 2) + "  " + "=" * max(30, width - left)
        lines = [rule, *lines, rule]
    return "\n".join(lines)


def _unknown(spec: str, prefix: str, argument: str, has_colon: bool) -> ParameterError:
    """The error for a spec no provider answers to: closest prefix, then every form."""
    names = list(_REGISTRY)
    close = difflib.get_close_matches(prefix.lower(), names, n=1, cutoff=0.7)
    if close:
        info = _REGISTRY[close[0]]
        guess = f"{close[0]}:{argument}" if argument else (close[0] if not info.argument_required else info.forms[0])
        hint = f"did you mean {guess!r}?"
    elif not has_colon:
        hint = f"a model name needs a provider prefix, e.g. 'st:{spec}'"
    else:
        hint = ""
    hint = f"; {hint}" if hint else ""
    return ParameterError(f"unknown embedder spec {spec!r}{hint}. Valid forms: {', '.join(spec_forms())}")


def parse_spec(spec: Any) -> tuple[ProviderInfo, str]:
    """``(provider, argument)`` for a spec string, or a :class:`ParameterError` that names the
    spec, suggests the closest valid one and lists every form. Loads nothing."""
    if not isinstance(spec, str) or not spec.strip():
        raise ParameterError(
            f"embedder spec must be a non-empty string, got {spec!r}; valid forms: {', '.join(spec_forms())}"
        )
    spec = spec.strip()
    prefix, colon, argument = spec.partition(":")
    info = _REGISTRY.get(prefix)
    if info is None:
        raise _unknown(spec, prefix, argument, bool(colon))
    if not argument:
        if info.argument_required:
            raise ParameterError(
                f"embedder spec {spec!r} needs an argument after '{prefix}:'; use {' or '.join(info.forms)}"
            )
        argument = info.default_argument
    return info, argument


def build(spec: str, **options: Any) -> Embedder:
    """The embedder a spec names (``options`` go to the provider's ``from_spec``)."""
    info, argument = parse_spec(spec)
    return info.cls.from_spec(info.prefix, argument, **options)
