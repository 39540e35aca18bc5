"""The tiny random-weight models, tokenizer and batches shared by tests/anchor (unit tests only).

Plain functions so other test modules can import them (``from tiny_models import ...``);
``conftest.py`` hands the same factories to tests as fixtures.
"""

from __future__ import annotations

import torch

from labkit.anchor.anchors import anchor_flags

FAMILIES = ["llama", "qwen2", "gpt_neox"]
VOCAB = 61
ANCHORS = {3, 7}  # token ids that act as anchors in these tests
TEXT = (
    "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak! "
    "Dr. Smith paid 3.5 dollars at 5 p.m. on Jan. 3 to J. R. R. Tolkien. Was it late? "
    'Yes... it was. "Go home." She left.\n\nA new paragraph without a stop\n\nEnd.'
)


def tiny_config(family: str, attn: str = "sdpa", max_pos: int = 128, vocab: int = VOCAB):
    """A tiny config of one supported family (2 layers, hidden 32)."""
    from transformers import GPTNeoXConfig, LlamaConfig, Qwen2Config

    common = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_pos,
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=0,
    )
    if family == "llama":
        cfg = LlamaConfig(num_key_value_heads=2, **common)
    elif family == "qwen2":
        cfg = Qwen2Config(num_key_value_heads=2, **common)
    else:
        cfg = GPTNeoXConfig(rotary_pct=0.5, **common)
    cfg._attn_implementation = attn
    return cfg


def tiny_model(family: str, attn: str = "sdpa", seed: int = 0, max_pos: int = 128):
    """A tiny random-weight causal LM of one family, in eval mode."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(family, attn, max_pos)).eval()


def family_cases() -> list[tuple[str, int]]:
    """``(model_type, variant)`` for every tiny config of every supported family."""
    from labkit.anchor.support import FAMILIES

    return [(mt, v) for mt, fam in FAMILIES.items() for v in range(len(fam.tiny))]


def family_config(model_type: str, variant: int = 0, attn: str = "sdpa", max_pos: int = 128, vocab: int = VOCAB):
    """The tiny config of ``FAMILIES[model_type].tiny[variant]`` (labkit.anchor.support)."""
    from transformers import AutoConfig

    from labkit.anchor.support import FAMILIES

    kwargs = dict(FAMILIES[model_type].tiny[variant])
    cfg = AutoConfig.for_model(
        model_type,
        vocab_size=vocab,
        max_position_embeddings=max_pos,
        pad_token_id=0,
        eos_token_id=None,
        bos_token_id=None,
        **kwargs,
    )
    cfg._attn_implementation = attn
    return cfg


def family_model(
    model_type: str, variant: int = 0, attn: str = "sdpa", seed: int = 0, max_pos: int = 128, vocab: int = VOCAB
):
    """A tiny random-weight causal LM of any supported family, in eval mode."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    cfg = family_config(model_type, variant, attn, max_pos, vocab)
    return AutoModelForCausalLM.from_config(cfg).eval()


def tiny_llama(
    vocab_size: int,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 4,
    max_pos: int = 256,
    tie: bool = True,
    seed: int = 0,
):
    """A tiny random Llama sized to a tokenizer's vocabulary (for end-to-end text tests)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=max_pos,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def make_tokenizer(text: str = TEXT * 3, vocab_size: int = 320):
    """A tiny byte-level BPE tokenizer trained in-process (no downloads)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def random_batch(seed: int, B: int = 3, L: int = 40, pad: str = "left", p_anchor: float = 0.15):
    """Random ids with anchor token 3 at rate ``p_anchor``; rows after the first are padded."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(8, VOCAB, (B, L), generator=gen)
    is_anchor = torch.rand(B, L, generator=gen) < p_anchor
    ids = torch.where(is_anchor, torch.tensor(3), ids)
    att = torch.ones(B, L, dtype=torch.long)
    for b in range(1, B):
        n = int(torch.randint(1, L // 2, (1,), generator=gen))
        if pad == "left":
            att[b, :n] = 0
        else:
            att[b, L - n :] = 0
    ids = ids.masked_fill(att == 0, 0)
    return ids, att, anchor_flags(ids, ANCHORS) & att.bool()


#: two short real-looking documents (a play, a meeting) for prompt and frontier tests
TWO_DOCUMENTS = [
    "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak! "
    "We are accounted poor citizens, the patricians good. What authority surfeits on would "
    "relieve us. If they would yield us but the superfluity, while it were wholesome, we might "
    "guess they relieved us humanely. But they think we are too dear.",
    "Speaker A: Okay, so the next item is the remote control design. Speaker B: I think the "
    "buttons should be bigger. Speaker A: Why is that? Speaker B: Users told us they lose it. "
    "Speaker C: We could add a locator beep. Speaker A: Good idea, let us note that.",
]
