"""From a curated dataset to tokenised examples and tensor batches, for every task.

- ``sft``: each conversation is rendered with the tokenizer's chat template one turn at a
  time, so the loss mask covers exactly the assistant turns (their end-of-turn token
  included: the model learns to stop). Rows may be packed.
- ``cpt``: each document is tokenised, ends with EOS, is cut into ``max_length`` pieces,
  and packed.
- ``classify``: one text per row, the label mapped to an integer (sorted label names).
- ``dpo``: prompt, chosen and rejected token ids; a batch holds the chosen rows, then the
  rejected rows (TRL's layout).

The balance stage's columns, when present: ``repeat`` copies a training row that many
times (after the split, so copies never straddle train and eval) and ``sample_weight``
rides on every training example (per token for sft/cpt, so packing keeps it) and turns
into a ``weights`` tensor in the batch. Held-out examples carry no weights.

Causal-LM batches carry ``position_ids`` that restart at every packed example and no
attention mask, so no token attends across examples (training.attention turns them into
a document mask); a batch whose rows hold one example each has no ``position_ids`` and
runs under the plain causal mask. Targets are pre-shifted: ``targets[b, t]`` is the token that
position ``t`` must predict, or -100.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl
import torch

from curation.core.balance_rules import require_usable
from curation.core.errors import SchemaError
from curation.core.schema import BALANCE_COLUMNS, Kind
from curation.core.split import copy_order, held_out
from training.chat import PromptFormat, render_pair

Task = Literal["sft", "cpt", "classify", "dpo"]
IGNORE = -100
T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One causal-LM row: a single example, or several packed ones."""

    ids: list[int]
    trained: list[bool]  # ids[i] is a loss target (predicted from the tokens before it)
    positions: list[int]  # restart at 0 at every example
    weights: list[float] | None = None  # per token: its example's `sample_weight`; None: unweighted


@dataclass(frozen=True)
class Labelled:
    ids: list[int]
    label: int
    weight: float | None = None  # the row's `sample_weight`; None: unweighted


@dataclass(frozen=True)
class Pair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]
    ref: tuple[float, float] | None = None  # reference log-probs (chosen, rejected), full fine-tuning only
    weight: float | None = None  # the row's `sample_weight`; None: unweighted


@dataclass(frozen=True)
class Prepared:
    """Tokenised train and eval examples, plus what the report needs to know about them."""

    task: Task
    train: list[Any]
    eval: list[Any]
    labels: list[str] = field(default_factory=list)  # classify: index -> label name
    stats: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- split and order
def split_indices(df: pl.DataFrame, eval_fraction: float, seed: int, *, task: Task) -> tuple[list[int], list[int]]:
    """The seeded held-out split, (train, eval) row indices in dataset order: the rows `tuneprep export` writes as validation."""
    kind: Kind = "classification" if task == "classify" else "text"
    held = held_out(df, share=eval_fraction, seed=seed, kind=kind).to_list()
    return [i for i, h in enumerate(held) if not h], [i for i, h in enumerate(held) if h]


@functools.lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=gen).tolist()


def take(n: int, count: int, *, seed: int, cursor: int) -> list[int]:
    """``count`` indices from the endless shuffled stream over ``n`` items, starting at ``cursor``.

    The stream is a fresh seeded permutation per epoch, so any position in it is
    reproducible from (seed, cursor): that is the data-order state a checkpoint keeps.
    """
    return [_epoch_order(n, seed, c // n)[c % n] for c in range(cursor, cursor + count)]


# ---------------------------------------------------------------------------- sft
def conversations(df: pl.DataFrame) -> list[list[dict[str, str]]]:
    """Each row as a list of ``{role, content}`` messages (prompt/completion rows included)."""
    if "messages" in df.columns:
        return [[{"role": m["role"], "content": m["content"]} for m in msgs] for msgs in df["messages"].to_list()]
    systems = df["system"].to_list() if "system" in df.columns else [None] * df.height
    out = []
    for system, prompt, completion in zip(systems, df["prompt"].to_list(), df["completion"].to_list(), strict=True):
        head = [{"role": "system", "content": system}] if system else []
        out.append([*head, {"role": "user", "content": prompt}, {"role": "assistant", "content": completion}])
    return out


def chat_segments(tokenizer: Any, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, trained) pieces: assistant turns are trained.

    Rendering prefixes of the conversation and diffing them finds each assistant turn
    exactly as the template writes it, end-of-turn marker included.
    """
    render = functools.partial(tokenizer.apply_chat_template, tokenize=False)
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(messages[:i], add_generation_prompt=True) if i else ""
        full = render(messages[: i + 1])
        if not (prefix.startswith(done) and full.startswith(prefix)):
            raise SchemaError(
                "the tokenizer's chat template does not render conversations turn by turn; set `train.model` to a model whose template does"
            )
        pieces += [(prefix[len(done) :], False), (full[len(prefix) :], True)]
        done = full
    if not any(trained for _, trained in pieces):
        raise SchemaError("a conversation has no assistant turn to learn from; every `messages` list needs one")
    return [p for p in pieces if p[0]]


def sft_row(tokenizer: Any, messages: list[dict[str, str]], max_length: int) -> tuple[Row, bool]:
    """Token ids and loss mask of one conversation; returns (row, was_truncated).

    Each assistant turn ends with EOS even if the template forgot it. Too-long rows lose
    their start (the response is at the end and must survive).
    """
    ids: list[int] = []
    trained: list[bool] = []
    for text, is_trained in chat_segments(tokenizer, messages):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        if is_trained and tokenizer.eos_token_id not in piece:
            piece = [*piece, tokenizer.eos_token_id]
        ids += piece
        trained += [is_trained] * len(piece)
    cut = max(len(ids) - max_length, 0)
    ids, trained = ids[cut:], trained[cut:]
    trained[0] = False  # the first token of a row is never predicted
    return Row(ids, trained, list(range(len(ids)))), cut > 0


# ---------------------------------------------------------------------------- cpt
def cpt_rows(tokenizer: Any, text: str, max_length: int) -> list[Row]:
    """One document, EOS-terminated, cut into rows of at most ``max_length`` tokens."""
    ids = [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    rows = []
    for start in range(0, len(ids), max_length):
        piece = ids[start : start + max_length]
        if len(piece) > 1:
            rows.append(Row(piece, [False] + [True] * (len(piece) - 1), list(range(len(piece)))))
    return rows


def token_weights(row: Row) -> list[float]:
    """The row's per-token weights; 1.0 each when it has none."""
    return row.weights if row.weights is not None else [1.0] * len(row.ids)


def _concat(rows: list[Row], *, weighted: bool) -> Row:
    return Row(
        [i for r in rows for i in r.ids],
        [t for r in rows for t in r.trained],
        [p for r in rows for p in r.positions],
        [w for r in rows for w in token_weights(r)] if weighted else None,
    )


def pack(rows: list[Row], max_length: int) -> list[Row]:
    """Greedily concatenate rows, in order, into blocks of at most ``max_length`` tokens (weights travel along)."""
    weighted = any(r.weights is not None for r in rows)
    blocks: list[Row] = []
    current: list[Row] = []
    size = 0
    for row in rows:
        if current and size + len(row.ids) > max_length:
            blocks.append(_concat(current, weighted=weighted))
            current, size = [], 0
        current.append(row)
        size += len(row.ids)
    if current:
        blocks.append(_concat(current, weighted=weighted))
    return blocks


# ---------------------------------------------------------------------------- dpo
def pair(
    tokenizer: Any, prompt: str, chosen: str, rejected: str, max_length: int, *, prompt_format: PromptFormat = "auto"
) -> tuple[Pair, bool]:
    """Prompt and completion ids rendered as ``prompt_format`` says (training.chat); returns (pair, was_truncated)."""
    head, texts = render_pair(tokenizer, prompt, (chosen, rejected), prompt_format)
    p_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    completions = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        completions.append(ids if tokenizer.eos_token_id in ids else [*ids, tokenizer.eos_token_id])
    c_ids, r_ids = completions
    longest = max(len(c_ids), len(r_ids))
    truncated = len(p_ids) + longest > max_length
    if truncated:
        keep = min(longest, max_length // 2) if len(p_ids) >= max_length // 2 else max_length - len(p_ids)
        c_ids, r_ids = c_ids[:keep], r_ids[:keep]
        p_ids = p_ids[len(p_ids) - (max_length - keep) :] if len(p_ids) > max_length - keep else p_ids
    return Pair(p_ids, c_ids, r_ids), truncated


# ---------------------------------------------------------------------------- balance columns
_TURN_OFF = "or set `train.balance_weights: false` to ignore the balance columns"


@dataclass(frozen=True)
class Balance:
    """The balance stage's per-row columns, validated, nulls read as 1; None where absent, all null or not used."""

    weights: list[float] | None
    repeats: list[int] | None
    ignored: list[str]  # columns present but not used (`balance_weights: false`)


def balance_columns(df: pl.DataFrame, *, use: bool) -> Balance:
    """The ``sample_weight`` and ``repeat`` columns of ``df``, checked, when present and ``use`` is on.

    Raises:
        SchemaError: a weight is negative, NaN or infinite, every weight is 0, a repeat is
            below 1, or a column has the wrong type.
    """
    present = [c for c in BALANCE_COLUMNS if c in df.columns and df[c].null_count() < df.height]
    if not use:
        return Balance(None, None, present)
    require_usable(df.select(present), hint=_TURN_OFF)
    weights = df["sample_weight"].cast(pl.Float64).fill_null(1.0).to_list() if "sample_weight" in present else None
    repeats = df["repeat"].cast(pl.Int64).fill_null(1).to_list() if "repeat" in present else None
    return Balance(weights, repeats, [])


def _with_weight(example: Any, weight: float) -> Any:
    if isinstance(example, Row):
        return dataclasses.replace(example, weights=[weight] * len(example.ids))
    return dataclasses.replace(example, weight=weight)


def expand(groups: list[list[Any]], weights: list[float] | None, repeats: list[int] | None) -> list[Any]:
    """Training examples: each row's weight attached, rows of weight 0 left out, ``repeat`` copies of each row.

    ``groups[i]`` holds row i's examples (cpt cuts a document into several). Copy k of
    every row comes after all copies k-1, so packing spreads a row's copies over blocks.
    Without weights and repeats this is the rows' examples in order.
    """
    if weights is not None:
        groups = [[_with_weight(x, w) for x in group] for group, w in zip(groups, weights, strict=True)]
    copies = repeats or [1] * len(groups)
    if weights is not None:
        copies = [c if w > 0 else 0 for c, w in zip(copies, weights, strict=True)]
    return [x for i in copy_order(copies) for x in groups[i]]


def _at(values: list[T] | None, idx: list[int]) -> list[T] | None:
    return None if values is None else [values[i] for i in idx]


def _balance_stats(balance: Balance, train_idx: list[int]) -> dict[str, Any]:
    """What the balance columns did to the training split, for metrics.json and the model card."""
    weights = _at(balance.weights, train_idx)
    kept = [i for i, w in zip(train_idx, weights or [1.0] * len(train_idx), strict=True) if w != 0]
    return {
        "weighted": weights is not None,
        "weight_min": round(min(weights), 6) if weights else None,
        "weight_max": round(max(weights), 6) if weights else None,
        "zero_weight_rows": len(train_idx) - len(kept),
        "repeat_added_rows": sum(balance.repeats[i] - 1 for i in kept) if balance.repeats is not None else 0,
        "ignored_columns": balance.ignored,
    }


# ---------------------------------------------------------------------------- prepare
def _tokenise(
    df: pl.DataFrame, task: Task, tokenizer: Any, max_length: int, labels: list[str], prompt_format: PromptFormat = "auto"
) -> tuple[list[list[Any]], int]:
    """The examples of each row of ``df`` (one, or a document's pieces for cpt) and how many were truncated."""
    if df.is_empty():  # e.g. the held-out part under `eval_fraction: 0` (a tokenizer fails on an empty batch)
        return [], 0
    if task == "sft":
        made = [sft_row(tokenizer, msgs, max_length) for msgs in conversations(df)]
        return [[r] for r, _ in made], sum(t for _, t in made)
    if task == "cpt":
        pieces = [cpt_rows(tokenizer, text, max_length) for text in df["text"].to_list()]
        return pieces, sum(map(len, pieces)) - df.height
    if task == "classify":
        index = {name: i for i, name in enumerate(labels)}
        enc = tokenizer(df["text"].to_list(), truncation=True, max_length=max_length)["input_ids"]
        return [[Labelled(ids, index[lab])] for ids, lab in zip(enc, df["label"].to_list(), strict=True)], sum(
            len(e) >= max_length for e in enc
        )
    rows = df.select("prompt", "chosen", "rejected").iter_rows()
    made_pairs = [pair(tokenizer, p, c, r, max_length, prompt_format=prompt_format) for p, c, r in rows]
    return [[p] for p, _ in made_pairs], sum(t for _, t in made_pairs)


REQUIRED = {"sft": ("prompt", "completion"), "cpt": ("text",), "classify": ("text", "label"), "dpo": ("prompt", "chosen", "rejected")}


def prepare(
    df: pl.DataFrame,
    task: Task,
    tokenizer: Any,
    *,
    max_length: int,
    eval_fraction: float,
    seed: int,
    packing: bool,
    balance_weights: bool = True,
    prompt_format: PromptFormat = "auto",
) -> Prepared:
    """Split ``df`` (seeded), tokenise both parts, apply the balance columns to the training part, pack if asked.

    Args:
        balance_weights: use the ``sample_weight`` and ``repeat`` columns when present.
        prompt_format: dpo: how prompts are rendered (``training.chat``).

    Raises:
        SchemaError: a required column is missing, the balance columns are invalid, or no row is left to train on.
    """
    needed = ("messages",) if task == "sft" and "messages" in df.columns else REQUIRED[task]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise SchemaError(f"task `{task}` needs the columns {', '.join(needed)}; the dataset lacks {', '.join(missing)}")
    balance = balance_columns(df, use=balance_weights)
    labels = sorted(set(df["label"].to_list())) if task == "classify" else []
    train_idx, eval_idx = split_indices(df, eval_fraction, seed, task=task)
    groups, cut_train = _tokenise(df[train_idx], task, tokenizer, max_length, labels, prompt_format)
    held_groups, cut_eval = _tokenise(df[eval_idx], task, tokenizer, max_length, labels, prompt_format)
    weights = _at(balance.weights, train_idx)
    if weights and not any(weights):
        raise SchemaError(f"every training row has `sample_weight` 0 after the eval split; give more rows a weight above 0 {_TURN_OFF}")
    train = expand(groups, weights, _at(balance.repeats, train_idx))
    held = [x for group in held_groups for x in group]
    examples = len(train)
    if packing and task in ("sft", "cpt"):
        train, held = pack(train, max_length), pack(held, max_length)
    if not train:
        raise SchemaError("the dataset has no rows to train on after the eval split; add rows or lower `train.eval_fraction`")
    stats = {
        "train_rows": len(train_idx),
        "eval_rows": len(eval_idx),
        "train_examples": examples,
        "train_packed_rows": len(train),
        "truncated": cut_train + cut_eval,
        "balance": _balance_stats(balance, train_idx),
    }
    return Prepared(task, train, held, labels, stats)


# ---------------------------------------------------------------------------- batches
def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def _item_weights(items: list[Labelled] | list[Pair]) -> dict[str, torch.Tensor]:
    """``{"weights": (B,)}`` when any item is weighted (unweighted ones count 1), else nothing."""
    if all(x.weight is None for x in items):
        return {}
    return {"weights": torch.tensor([1.0 if x.weight is None else x.weight for x in items], dtype=torch.float32)}


def _target_index(targets: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Flat positions of the targets, (N,): found here on the CPU, the loss selects them on the device without a sync."""
    flat = np.asarray(targets).reshape(-1)
    return torch.from_numpy(np.flatnonzero(flat != IGNORE))


def collate_rows(rows: list[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids, targets: (B, T); position_ids (B, T) only when a row holds more than one example.

    Padding is its own segment and never trained. A batch whose rows each hold one example
    (padding aside) goes without ``position_ids``: a plain causal mask is then exact (no
    real token attends to the padding after it) and attention runs its fastest kernel.
    Built with numpy, not per token in Python: it runs on every step.

    Weighted rows add ``weights`` (B, T): the weight of each target's example, 0 where there is no target.
    """
    width = max(len(r.ids) for r in rows)
    lengths = np.array([len(r.ids) for r in rows])
    real = np.arange(width)[None, :] < lengths[:, None]  # (B, T)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    ids[real] = np.concatenate([r.ids for r in rows])
    positions = np.broadcast_to(np.arange(width), ids.shape) - np.where(real, 0, lengths[:, None])  # padding restarts at 0
    positions[real] = np.concatenate([r.positions for r in rows])
    trained = np.zeros(ids.shape, dtype=bool)
    trained[real] = np.concatenate([r.trained for r in rows])
    # targets[b, t] is token t + 1, if trained and of the same example (a position of 0 starts a new one)
    next_trained = np.zeros_like(trained)
    next_trained[:, :-1] = trained[:, 1:] & (positions[:, 1:] != 0)
    targets = np.full_like(ids, IGNORE)
    targets[:, :-1] = np.where(next_trained[:, :-1], ids[:, 1:], IGNORE)
    batch = {"input_ids": torch.from_numpy(ids), "targets": torch.from_numpy(targets), "target_index": _target_index(targets)}
    starts = ((positions == 0) & real).sum(axis=1)  # examples per row
    if (starts > 1).any():
        batch["position_ids"] = torch.from_numpy(positions)
    if any(r.weights is not None for r in rows):
        weights = np.zeros(ids.shape, dtype=np.float32)
        weights[real] = np.concatenate([token_weights(r) for r in rows])
        shifted = np.zeros_like(weights)
        shifted[:, :-1] = np.where(next_trained[:, :-1], weights[:, 1:], 0.0)
        batch["weights"] = torch.from_numpy(shifted)  # (B, T)
    return batch


def collate_labelled(items: list[Labelled], pad_id: int) -> dict[str, torch.Tensor]:
    ids = _pad([x.ids for x in items], pad_id)
    mask = _pad([[1] * len(x.ids) for x in items], 0)
    labels = torch.tensor([x.label for x in items], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, **_item_weights(items)}


def collate_pairs(items: list[Pair], pad_id: int) -> dict[str, torch.Tensor]:
    """(2B, T) tensors: chosen rows then rejected rows, right-padded; targets on completions only."""
    seqs = [p.prompt + p.chosen for p in items] + [p.prompt + p.rejected for p in items]
    starts = [len(p.prompt) for p in items] * 2
    ids = _pad(seqs, pad_id)
    mask = _pad([[1] * len(s) for s in seqs], 0)
    targets = torch.full_like(ids, IGNORE)
    for b, (seq, start) in enumerate(zip(seqs, starts, strict=True)):
        targets[b, start - 1 : len(seq) - 1] = torch.tensor(seq[start:], dtype=torch.long)
    batch = {"input_ids": ids, "attention_mask": mask, "targets": targets, "target_index": _target_index(targets), **_item_weights(items)}
    # weights: (B,), one per pair
    if all(p.ref is not None for p in items):
        batch["ref_logps"] = torch.tensor([p.ref[0] for p in items] + [p.ref[1] for p in items], dtype=torch.float32)  # type: ignore[index]
    return batch


def collate(task: Task, items: list[Any], pad_id: int) -> dict[str, torch.Tensor]:
    if task in ("sft", "cpt"):
        return collate_rows(items, pad_id)
    if task == "classify":
        return collate_labelled(items, pad_id)
    return collate_pairs(items, pad_id)
