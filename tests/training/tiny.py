"""Tiny models and a locally trained tokenizer for the training tests: nothing is downloaded.

The tokenizer is a byte-level BPE trained on the fixture sentences, with ChatML markers
as special tokens; the models are a 2-layer Llama (hidden size 64) and a 2-layer BERT,
built from configs with a fixed seed and saved as local directories, so the tests load
them through the same code path as a user's model directory.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import torch

COLOURS = {
    "apple": "red",
    "banana": "yellow",
    "grass": "green",
    "sky": "blue",
    "snow": "white",
    "coal": "black",
    "orange": "orange",
    "plum": "purple",
}
TOPICS = {"billing": "my card was charged twice", "shipping": "the parcel has not arrived", "account": "i cannot log in to my account"}


def qa_rows(n: int = 48) -> list[dict[str, str]]:
    """Learnable prompt/completion pairs: what colour is X -> X is C."""
    items = list(COLOURS.items())
    return [
        {"id": f"q{i}", "prompt": f"what colour is the {t}? ({i})", "completion": f"the {t} is {c}."}
        for i, (t, c) in enumerate(items * (n // len(items)))
    ]


def text_rows(n: int = 40) -> list[dict[str, str]]:
    items = list(COLOURS.items())
    return [
        {"id": f"t{i}", "text": f"the {t} is {c}. every {t} i saw was {c}, and {c} is the colour of the {t}. ({i})"}
        for i, (t, c) in enumerate(items * (n // len(items)))
    ]


def label_rows(n: int = 48) -> list[dict[str, str]]:
    items = list(TOPICS.items())
    return [{"id": f"c{i}", "text": f"hello, {s} since monday ({i})", "label": lab} for i, (lab, s) in enumerate(items * (n // len(items)))]


def pair_rows(n: int = 32) -> list[dict[str, Any]]:
    items = list(COLOURS.items())
    rows = []
    for i, (t, c) in enumerate(items * (n // len(items))):
        wrong = items[(i + 3) % len(items)][1]
        rows.append(
            {
                "id": f"p{i}",
                "prompt": f"what colour is the {t}? ({i})",
                "chosen": f"the {t} is {c}.",
                "rejected": f"the {t} is {wrong}.",
                "margin": 1.0,
            }
        )
    return rows


def corpus() -> list[str]:
    texts = [r["prompt"] + " " + r["completion"] for r in qa_rows(8)] + [r["text"] for r in text_rows(8) + label_rows(3)]
    texts += [r["rejected"] for r in pair_rows(8)] + ["user assistant system hello, since monday (0) (1) (2) (3) (4) (5) (6) (7) (8) (9)"]
    return texts


def build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from training.models import CHATML

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<|im_start|>", "<|im_end|>"]
    bpe.train_from_iterator(
        corpus(), trainers.BpeTrainer(vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<|im_end|>", bos_token="<|im_start|>")
    tok.chat_template = CHATML
    return tok


def tiny_llama(vocab: int, pad_id: int, seed: int = 0) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, pad_token_id=pad_id, tie_word_embeddings=True,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows)


def save_tiny_bert(out: Any, tokenizer: Any, *, hidden: int = 64, layers: int = 2, heads: int = 4) -> Any:
    """A tiny BERT encoder (no classification head: training adds it, as for MiniLM) saved with ``tokenizer`` at ``out``."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=4 * hidden,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(cfg).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
