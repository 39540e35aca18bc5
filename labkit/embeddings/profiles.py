"""Sizes of study 1 per profile (sizes only; the code path is the same in every profile)."""
from __future__ import annotations

_MODELS = ["st:all-MiniLM-L6-v2", "hf-mean:all-MiniLM-L6-v2", "hf-cls:all-MiniLM-L6-v2",
           "tfidf-lsa", "openai:text-embedding-3-small", "google:gemini-embedding-001"]

_COMMON = {
    "models": _MODELS,
    "pairs_csv": None,  # a user's pair CSV (question_1, question_2, label, optional dr_id)
    "test_doctors": 3, "val_doctors": 1,
    "finetune_base": "all-MiniLM-L6-v2",
    "head": {"hidden": 256, "out": 128, "loss": "contrastive", "max_epochs": 30, "patience": 4},
    "country": "USA",
}

PROFILES: dict[str, dict] = {
    # a few hundred pairs of every doctor, one epoch: the whole notebook in well under 2 minutes
    "smoke": {**_COMMON, "max_pairs": 400, "bootstrap": 200, "finetune_epochs": 1,
              "head": {**_COMMON["head"], "max_epochs": 3, "patience": 2},
              "inference_energy_texts": 200},
    "default": {**_COMMON, "max_pairs": 0, "bootstrap": 1000, "finetune_epochs": 4,
                "inference_energy_texts": 1000},
    "paper": {**_COMMON, "max_pairs": 0, "bootstrap": 4000, "finetune_epochs": 8,
              "inference_energy_texts": 3000},
}
