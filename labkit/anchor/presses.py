"""One prompt through one cache method for the KV-budget frontier: a full cache, a kvpress press
(training-free KV-cache compression from NVIDIA's kvpress) or the anchor cache.

Why kvpress and not our own copies: its "presses" are the maintained implementations of the
methods a practitioner would try instead of anchor training (StreamingLLM, SnapKV, key norm,
expected attention, H2O-style observed attention). labkit only picks a press, sets its
compression ratio so it keeps an exact number of context tokens, and runs one prefill under it
(``with press(model): model(ids, past_key_values=cache)``); the press drops K/V pairs from the
cache of every layer while the prompt is encoded, and decoding then reads the smaller cache.

Two settings depart from kvpress's defaults, each for a stated reason:

* the compression ratio is ``1 - (kept + 0.5) / length`` rather than ``1 - share``, so that
  kvpress's ``int(length * (1 - ratio))`` keeps exactly ``kept`` tokens (float rounding would
  otherwise keep one fewer: 19 of 200 at a 10% budget), and every method meets the same budget;
* SnapKV's observation window is ``min(64, kept // 2)`` (at least 1): its default of 64 recent
  tokens, always kept, would alone exceed a 2-5% budget of a short prompt, leaving top-k ties
  to pick which of them stay.

``ObservedAttentionPress`` needs the attention weights, which only eager attention returns: it
runs with the model switched to eager attention for the prefill (:func:`attention`) and back.

:func:`run_cache` / :func:`run_anchor` prefill a context, read the bytes of the cache tensors,
then teacher-force the query one decode step at a time through the kept cache
(:func:`query_scores`), timing both phases on the model's device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch

from labkit.anchor.anchors import anchor_flags
from labkit.anchor.cache import anchor_id_tensor, anchor_prefill, anchor_step
from labkit.anchor.profiles import PRESSES  # name -> (label, kvpress class, what it keeps)
from labkit.anchor.support import kv_cache_bytes, new_cache
from labkit.errors import ModelError, ParameterError
from labkit.timing import Stopwatch

__all__ = [
    "PRESSES",
    "DEFAULT_PRESSES",
    "check_presses",
    "press_ratio",
    "make_press",
    "attention",
    "pressed_prefill",
    "query_scores",
    "run_cache",
    "run_anchor",
]

DEFAULT_PRESSES: tuple[str, ...] = tuple(PRESSES)
_EAGER = {"observed_attention"}


def check_presses(names: Iterable[str] | None) -> list[str]:
    """The press names as a list, or one :class:`ParameterError` naming the unknown ones and the
    choices (checked before any model runs). ``None`` means every press."""
    if names is None:
        return list(DEFAULT_PRESSES)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ParameterError(f"presses must be a list of press names, got {names!r}; choices: {', '.join(PRESSES)}")
    names = list(names)
    unknown = [n for n in names if n not in PRESSES]
    if unknown:
        raise ParameterError(f"presses: unknown press {', '.join(map(repr, unknown))}; choices: {', '.join(PRESSES)}")
    if len(set(names)) != len(names):
        raise ParameterError(f"presses: a press is listed twice in {names!r}")
    return names


def press_failed(name: str, exc: Exception, warn: Callable[[str], None] | None) -> None:
    """A press kvpress cannot run on this model: a warning through ``warn`` (the frontier
    goes on without it), or one :class:`ModelError` naming the press when there is no ``warn``."""
    message = f"failed: press {name}: {type(exc).__name__}: {exc}".strip()
    if warn is None:
        raise ModelError(message) from exc
    warn(message)


def press_ratio(kept: int, length: int) -> float:
    """kvpress ``compression_ratio`` (share dropped) that keeps exactly ``kept`` of ``length``
    tokens under its rule ``max(1, int(length * (1 - ratio)))``.

    >>> press_ratio(20, 200), press_ratio(200, 200)
    (0.8975, 0.0)
    """
    if not 1 <= kept <= length:
        raise ParameterError(f"kept tokens must be in 1..{length}, got {kept}")
    return 0.0 if kept >= length else 1.0 - (kept + 0.5) / length


def _import_kvpress():
    """``import kvpress``, undoing the one global side effect that breaks other labkit code.

    On import, kvpress wraps every function in transformers' ``ALL_ATTENTION_FUNCTIONS`` (to
    support head-wise presses such as AdaKV, which labkit does not use). Its wrapper passes
    ``dropout`` positionally, which lands on ``flex_attention_forward``'s ``scaling`` argument:
    after ``import kvpress`` every flex-attention model in the process fails with "got multiple
    values for argument 'scaling'" (anchor training on the flex path, for one). The flex entry
    is therefore put back as it was; the other entries stay wrapped as kvpress intends.
    """
    import sys

    if "kvpress" in sys.modules:
        return sys.modules["kvpress"]
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    flex = ALL_ATTENTION_FUNCTIONS.get("flex_attention")
    import kvpress

    if flex is not None:
        ALL_ATTENTION_FUNCTIONS["flex_attention"] = flex
    return kvpress


def make_press(name: str, kept: int, length: int):
    """A kvpress press that keeps ``kept`` of a ``length``-token prompt's K/V in every layer."""
    kvpress = _import_kvpress()

    check_presses([name])
    kwargs = {"compression_ratio": press_ratio(kept, length)}
    if name == "snapkv":
        kwargs["window_size"] = max(1, min(64, kept // 2, length - 1))
    return getattr(kvpress, PRESSES[name][1])(**kwargs)


@contextlib.contextmanager
def attention(model, implementation: str | None) -> Iterator[None]:
    """Run the block with ``model`` on another attention implementation (``None``: unchanged),
    restoring the original one afterwards."""
    before = getattr(model.config, "_attn_implementation", None)
    if implementation is None or implementation == before:
        yield
        return
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@torch.no_grad()
def pressed_prefill(model, name: str | None, ids: torch.Tensor, kept: int | None = None):
    """Encode ``ids`` (``(1, L)``) into a new ``DynamicCache``, under press ``name`` keeping
    ``kept`` tokens (``name=None``: the full cache).

    Returns ``(cache, last_logits)``: the (compressed) cache and the next-token logits
    ``(1, V)`` after the prompt. The logits of the prompt's last token are exact (the press
    compresses the cache after each layer's attention, not the prompt's own hidden states).
    """

    cache = new_cache(model)
    length = int(ids.shape[1])
    press = None if name is None else make_press(name, int(kept if kept is not None else length), length)
    scope = press(model) if press is not None else contextlib.nullcontext()
    with attention(model, "eager" if name in _EAGER else None), scope:
        out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    return cache, out.logits[:, -1].float()


# --------------------------------------------------------------------------- one prompt, one method
def query_scores(first: torch.Tensor, step: Callable[[int, int], torch.Tensor], query: list[int]) -> tuple[float, int]:
    """Teacher-force ``query``: NLL sum and correct count; ``first`` predicts query[0],
    ``step(token, i)`` feeds query[i] and returns the logits predicting query[i + 1]."""
    nll, correct, logits = 0.0, 0, first
    for i, target in enumerate(query):
        lp = torch.log_softmax(logits[0].float(), dim=-1)
        nll -= float(lp[target])
        correct += int(int(lp.argmax()) == target)
        if i + 1 < len(query):
            logits = step(target, i)
    return nll, correct


def run_cache(model, ids: torch.Tensor, query: list[int], press: str | None, kept: int | None) -> dict:
    """Full cache (``press=None``) or a kvpress press: prefill, then the query step by step."""
    clock = Stopwatch(model).start()
    cache, first = pressed_prefill(model, press, ids, kept)
    prefill_s = clock.lap()
    kv = kv_cache_bytes(cache)
    L, device = ids.shape[1], ids.device

    def step(token: int, i: int) -> torch.Tensor:
        out = model(
            input_ids=torch.tensor([[token]], device=device),
            past_key_values=cache,
            position_ids=torch.tensor([[L + i]], device=device),
            use_cache=True,
        )
        return out.logits[:, -1]

    with torch.no_grad():
        nll, correct = query_scores(first, step, query)
    return {"kv_bytes": kv, "nll": nll, "correct": correct, "prefill_s": prefill_s, "decode_s": clock.lap()}


def run_anchor(model, ids: torch.Tensor, anchor_ids: set[int], query: list[int], chunk: int | None) -> dict:
    """Anchor prefill (pruned after every chunk), then the query through anchor steps."""
    ids_t = anchor_id_tensor(anchor_ids, ids.device)
    clock = Stopwatch(model).start()
    state = anchor_prefill(model, ids, anchor_flags(ids, anchor_ids), open_limit=None, chunk=chunk)
    prefill_s = clock.lap()
    kv = kv_cache_bytes(state.cache)

    def step(token: int, i: int) -> torch.Tensor:  # noqa: ARG001 (the decode loop passes the step index)
        return anchor_step(model, state, torch.tensor([token], device=ids.device), ids_t)

    nll, correct = query_scores(state.last_logits, step, query)
    return {"kv_bytes": kv, "nll": nll, "correct": correct, "prefill_s": prefill_s, "decode_s": clock.lap()}
