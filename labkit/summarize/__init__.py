"""Study 3: compact fine-tuned vs zero-shot summarizers on meeting transcripts (Tiny Titans).

Modules: :mod:`.data` (items, instruction types, token lengths), :mod:`.chunking` (fit
transcripts into a context), :mod:`.base` (the ``summarize(items)`` interface and its cache),
:mod:`.extractive`, :mod:`.generative` (local HF models), :mod:`.endpoint` (OpenAI-compatible
APIs), :mod:`.finetune`, :mod:`.metrics`, :mod:`.evaluate` (runs systems, builds the tables).
"""

from labkit.summarize.base import Summarizer
from labkit.summarize.data import INSTRUCTIONS, Instruction, Item, load_jsonl, qmsum_items
from labkit.summarize.profiles import PROFILES

__all__ = ["INSTRUCTIONS", "Instruction", "Item", "PROFILES", "Summarizer", "load_jsonl", "qmsum_items"]
