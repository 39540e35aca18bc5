"""WSD chains (labkit.lm.wsd): a branch resumed off the longest run is the run a fresh training of
its own budget gives, each branch is cached under its own key, and bad chains are refused."""

import json

import pytest

from labkit.errors import ParameterError
from labkit.lm import TinyLMConfig, train_tiny_lm
from labkit.lm.train import recipe
from labkit.lm.wsd import chain_configs, train_chain

WSD = dict(
    vocab_size=512,
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    context_length=64,
    batch_size=8,
    corpus=["tinyshakespeare"],
    heldout_tokens=4000,
    schedule="wsd",
)


def test_chain_configs_share_the_warmup_and_refuse_mixed_chains():
    short, long = TinyLMConfig(**WSD, train_tokens=512 * 40), TinyLMConfig(**WSD, train_tokens=512 * 100)
    made = chain_configs([long, short])
    assert [c.warmup for c in made] == [2, 2]  # 5% of the shortest (40 steps), in both keys
    assert made[0].decay_start == 100 - 20 and made[1].decay_start == 40 - 8
    with pytest.raises(ParameterError, match="differ only in train_tokens"):
        chain_configs([short, TinyLMConfig(**{**WSD, "hidden_size": 32}, train_tokens=512 * 40)])
    with pytest.raises(ParameterError, match="schedule='wsd'"):
        chain_configs([TinyLMConfig(**{**WSD, "schedule": "cosine"})])
    with pytest.raises(ParameterError, match="no room"):
        TinyLMConfig(**WSD, train_tokens=512 * 2, warmup_steps=2)
    with pytest.raises(ParameterError, match="schedule must be one of"):
        TinyLMConfig(**{**WSD, "schedule": "linear"})


def test_cosine_keys_are_unchanged_by_the_new_fields():
    plain = TinyLMConfig(vocab_size=512, hidden_size=16, num_layers=1, num_heads=2)
    assert not {"schedule", "cooldown_fraction", "warmup_steps"} & set(plain.as_dict())


@pytest.mark.slow
def test_a_branch_is_the_fresh_run_of_its_budget_and_is_cached_alone(lm_cache, needs_data):
    budgets = [512 * 30, 512 * 60, 512 * 90]
    configs = chain_configs([TinyLMConfig(**WSD, train_tokens=d) for d in budgets])
    chain = train_chain(configs)
    losses = [lm.metrics["heldout_loss"] for lm in chain]
    assert losses[0] > losses[1] > losses[2]  # more data, lower loss
    assert [lm.metrics["branched_from_step"] for lm in chain] == [24, 48, 0]
    assert chain[0].metrics["wall_s"] < chain[2].metrics["wall_s"]  # a branch pays its cool-down only
    # the shortest budget trained on its own, from scratch, under another seed-free cache entry
    fresh_config = configs[0]
    folder = recipe(fresh_config)[0].folder
    saved = json.loads((folder / "labkit_model.json").read_text())
    assert saved["config"]["schedule"] == "wsd" and saved["config"]["warmup_steps"] == configs[0].warmup
    fresh = train_tiny_lm(fresh_config, force=True, progress=False)
    assert fresh.metrics["heldout_loss"] == losses[0]  # bit for bit
    again = train_chain(configs)  # all cached now
    assert [lm.path for lm in again] == [lm.path for lm in chain]
