"""Session fixtures for the training tests: the tiny tokenizer and model directories (see tiny.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.training.tiny import build_tokenizer, save_tiny_bert, tiny_llama


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny models run several times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return build_tokenizer()


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A tiny Llama with its tokenizer, saved like any local model directory."""
    out = tmp_path_factory.mktemp("tiny-llama")
    tiny_llama(len(tokenizer), tokenizer.pad_token_id).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> Path:
    """A tiny BERT encoder (no classification head: training adds it, as for MiniLM)."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), tokenizer)  # type: ignore[no-any-return]
