"""Export a validated run's dataset for a training service, with a seeded train/validation split.

Formats: ``bedrock-ft`` (``{"prompt","completion"}`` JSONL), ``bedrock-cpt``
(``{"input"}`` JSONL), ``bedrock-conversation`` (``schemaVersion`` + ``system`` +
alternating ``messages``), ``openai-chat`` (``{"messages"}`` JSONL), ``openai-preference``
(``{"input": {"messages"}, "preferred_output", "non_preferred_output"}`` JSONL, OpenAI's
preference (DPO) fine-tuning), ``hf`` (a ``datasets.load_from_disk`` directory) and ``parquet``. Each target's documented limits
(per-record token budget at its characters-per-token estimate, file size caps, minimum
records) are checked before anything is written, and a violation names the offending
ids. Output goes to ``RUN/dataset/exports/<format>/``, built under a temporary name and
renamed whole. Exports refuse a run the gate refuses unless ``unvalidated=True``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from checks.formats import FORMATS as FORMATS  # re-exported: the one list of format names
from checks.gate import require_pass
from curation.core.config import read_run_config
from curation.core.errors import ConfigError, GateFailed
from curation.core.rundir import (
    DATASET,
    atomic_dir,
    export_files,
    frame_fingerprint,
    load_dataset,
    read_manifest,
    update_manifest,
    write_json,
)
from curation.core.schema import Kind, detect_form
from curation.core.split import copy_order, held_out

SCHEMA_VERSION = "bedrock-conversation-2024"
SPLITS = ("train", "validation")
_GB, _MB = 1024**3, 1024**2
_SHOW = 10  # offending ids named in an error


@dataclass(frozen=True)
class Limits:
    """A target's documented limits (docs/exports.md cites the source of each)."""

    kinds: tuple[str, ...]  # record kinds the format can carry
    max_tokens: int | None = None  # per record, input + output
    chars_per_token: float = 6.0  # the target's own estimate for counting without its tokenizer
    max_train_bytes: int | None = None
    max_validation_bytes: int | None = None
    min_train_records: int = 0


LIMITS: dict[str, Limits] = {
    "bedrock-ft": Limits(("classification", "instruction"), 4096, 6.0, 1 * _GB, 100 * _MB),
    "bedrock-cpt": Limits(("text",), 4096, 6.0, 10 * _GB, 100 * _MB),
    "bedrock-conversation": Limits(("classification", "instruction"), 4096, 6.0, 1 * _GB, 100 * _MB),
    "openai-chat": Limits(("classification", "instruction"), 16385, 4.0, 512 * _MB, 512 * _MB, min_train_records=10),
    "openai-preference": Limits(("preference",), 16385, 4.0, 512 * _MB, 512 * _MB, min_train_records=10),  # prompt + longer answer
    "hf": Limits(("text", "instruction", "classification", "ratings", "preference")),
    "parquet": Limits(("text", "instruction", "classification", "ratings", "preference")),
}


class ExportUsageError(ConfigError):
    """A `--format` or `--validation` the export cannot take: a usage error (exit 2), one plain line."""

    def lines(self) -> list[str]:
        return list(self.problems)


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path  # RUN/dataset/exports/<format>/
    rows: dict[str, int]  # per split
    verdict: str  # "pass", or "unvalidated" when exported past a refusing gate
    dataset_fingerprint: str
    warning: str | None = None  # why the gate refused, for unvalidated exports
    notes: tuple[str, ...] = ()  # what the format did with the balance stage's columns


# ---------------------------------------------------------------------------- the split
def assign_splits(df: pl.DataFrame, *, validation: float, seed: int, kind: Kind) -> pl.Series:
    """``train``/``validation`` per row: the rows ``tuneprep train`` holds out with the same share and seed (curation.core.split)."""
    held = held_out(df, share=validation, seed=seed, kind=kind)
    return pl.select(pl.when(held).then(pl.lit("validation")).otherwise(pl.lit("train")).alias("split")).to_series()


# ---------------------------------------------------------------------------- records
Turns = tuple[str | None, list[tuple[str, str]]]  # (system, [(role, text), ...])


def turns_of(row: dict[str, Any], kind: str) -> Turns:
    """The conversation a row stands for: classification is text -> label, instruction its turns."""
    if kind == "classification":
        return None, [("user", row["text"]), ("assistant", row["label"])]
    if "messages" in row:
        msgs = [(m["role"], m["content"]) for m in row["messages"]]
        system = msgs[0][1] if msgs and msgs[0][0] == "system" else None
        return system, msgs[1:] if system is not None else msgs
    return row.get("system"), [("user", row["prompt"]), ("assistant", row["completion"])]


def _turn_problem(turns: list[tuple[str, str]]) -> str | None:
    roles = [r for r, _ in turns]
    if not roles or roles[0] != "user" or roles[-1] != "assistant":
        return "must start with a user turn and end with an assistant turn"
    if any(r != ("user" if i % 2 == 0 else "assistant") for i, r in enumerate(roles)):
        return "turns must alternate user/assistant"
    return None


def record_of(fmt: str, row: dict[str, Any], kind: str) -> dict[str, Any]:
    """The JSON record ``fmt`` expects for one dataset row."""
    if fmt == "bedrock-cpt":
        return {"input": row["text"]}
    if fmt == "openai-preference":
        return {
            "input": {"messages": [{"role": "user", "content": row["prompt"]}]},
            "preferred_output": [{"role": "assistant", "content": row["chosen"]}],
            "non_preferred_output": [{"role": "assistant", "content": row["rejected"]}],
        }
    system, turns = turns_of(row, kind)
    if fmt == "bedrock-ft":
        (_, prompt), (_, completion) = turns  # single turn: checked before rendering
        return {"prompt": f"{system}\n\n{prompt}" if system else prompt, "completion": completion}
    if fmt == "bedrock-conversation":
        record: dict[str, Any] = {"schemaVersion": SCHEMA_VERSION}
        if system:
            record["system"] = [{"text": system}]
        record["messages"] = [{"role": r, "content": [{"text": t}]} for r, t in turns]
        return record
    prefix = [{"role": "system", "content": system}] if system else []
    return {"messages": prefix + [{"role": r, "content": t} for r, t in turns]}


def _row_chars(fmt: str, row: dict[str, Any], kind: str) -> int:
    if fmt == "bedrock-cpt":
        return len(row["text"])
    if fmt == "openai-preference":  # each answer is trained on after the prompt: the longer one must fit
        return len(row["prompt"]) + max(len(row["chosen"]), len(row["rejected"]))
    system, turns = turns_of(row, kind)
    return len(system or "") + sum(len(t) for _, t in turns)


# ---------------------------------------------------------------------------- limits
def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:_SHOW]) + (f" (+{len(ids) - _SHOW} more)" if len(ids) > _SHOW else "")


def check_records(fmt: str, df: pl.DataFrame, kind: str, *, max_tokens: int | None) -> None:
    """Raise GateFailed naming the ids of records the target would reject (shape, then length)."""
    limits = LIMITS[fmt]
    if fmt in ("hf", "parquet"):
        return
    rows = df.to_dicts()
    if fmt not in ("bedrock-cpt", "openai-preference"):
        bad = [r["id"] for r in rows if _turn_problem(turns_of(r, kind)[1])]
        if bad:
            raise GateFailed(
                f"export `{fmt}`: {len(bad)} records are not a user/assistant conversation ending with the assistant: ids {_ids(bad)}"
            )
        if fmt == "bedrock-ft":
            multi = [r["id"] for r in rows if len(turns_of(r, kind)[1]) != 2]
            if multi:
                raise GateFailed(
                    f"export `bedrock-ft`: {len(multi)} records have several turns, prompt/completion holds one: ids {_ids(multi)}; use `bedrock-conversation`"
                )
    budget = max_tokens or limits.max_tokens
    if budget is None:
        return
    over = [r["id"] for r in rows if math.ceil(_row_chars(fmt, r, kind) / limits.chars_per_token) > budget]
    if over:
        raise GateFailed(
            f"export `{fmt}`: {len(over)} records exceed the {budget}-token budget "
            f"(~{int(budget * limits.chars_per_token)} characters at {limits.chars_per_token:g} per token): ids {_ids(over)}; "
            f"shorten or drop them (`checks.max_tokens` catches them at the gate) or pass a{' larger' if max_tokens else ''} `--max-tokens`"
        )


def _check_files(fmt: str, sizes: dict[str, int], rows: dict[str, int]) -> None:
    limits = LIMITS[fmt]
    caps = {"train": limits.max_train_bytes, "validation": limits.max_validation_bytes}
    for split, size in sizes.items():
        cap = caps[split]
        if cap is not None and size > cap:
            raise GateFailed(
                f"export `{fmt}`: {split}.jsonl would be {size / _MB:.1f} MB, over the {cap / _MB:.0f} MB cap; export a smaller run or a larger `--validation` share"
            )
    if rows.get("train", 0) < limits.min_train_records:
        raise GateFailed(
            f"export `{fmt}`: {rows.get('train', 0)} training records, the target needs at least {limits.min_train_records}; "
            "lower `--validation` or curate more rows"
        )


# ---------------------------------------------------------------------------- writing
def _jsonl(fmt: str, df: pl.DataFrame, kind: str) -> bytes:
    lines = (json.dumps(record_of(fmt, row, kind), ensure_ascii=False, separators=(",", ":")) for row in df.iter_rows(named=True))
    return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_files(fmt: str, parts: dict[str, pl.DataFrame], kind: str, out: Path) -> dict[str, dict[str, Any]]:
    """Write the splits in ``fmt`` under ``out``; return per-split file, rows and bytes."""
    if fmt == "hf":
        return _write_hf(parts, out)
    files: dict[str, dict[str, Any]] = {}
    if fmt == "parquet":
        for split, part in parts.items():
            part.write_parquet(out / f"{split}.parquet", statistics=False)
            files[split] = {"file": f"{split}.parquet", "rows": part.height}
    else:
        blobs = {split: _jsonl(fmt, part, kind) for split, part in parts.items()}
        _check_files(fmt, {s: len(b) for s, b in blobs.items()}, {s: p.height for s, p in parts.items()})
        for split, blob in blobs.items():
            (out / f"{split}.jsonl").write_bytes(blob)
            files[split] = {"file": f"{split}.jsonl", "rows": parts[split].height}
    for entry in files.values():
        entry["sha256"] = _sha(out / entry["file"])
    return files


def _write_hf(parts: dict[str, pl.DataFrame], out: Path) -> dict[str, dict[str, Any]]:
    import datasets

    datasets.disable_progress_bars()  # the CLI prints its own summary
    dataset = datasets.DatasetDict({split: datasets.Dataset.from_polars(part) for split, part in parts.items()})
    dataset.save_to_disk(str(out))
    return {split: {"file": split, "rows": part.height} for split, part in parts.items()}


def _run_seed(run_dir: Path) -> int:
    return read_run_config(run_dir).run.seed  # a broken config.yaml is an error, never seed 0


def _gate(run_dir: Path, *, unvalidated: bool) -> tuple[str, str | None]:
    try:
        require_pass(run_dir)
    except GateFailed as e:
        if not unvalidated:
            raise GateFailed(f"{e}; export refused (pass `--unvalidated` to export anyway, loudly marked)") from None
        return "unvalidated", str(e)
    return "pass", None


def export(
    run_dir: Path, fmt: str, *, validation: float = 0.1, seed: int | None = None, max_tokens: int | None = None, unvalidated: bool = False
) -> ExportResult:
    """Write ``RUN/dataset/exports/<fmt>/`` with a seeded, stratified train/validation split.

    Args:
        run_dir: a run directory; its checks must have passed (see ``require_pass``).
        fmt: one of ``FORMATS``.
        validation: the validation share, per stratum (classification: per label); 0 for none.
        seed: the split's seed; default ``run.seed`` from the run's config.
        max_tokens: override the target's per-record token budget.
        unvalidated: export even though the gate refuses; recorded as ``unvalidated``.

    Raises:
        ExportUsageError: unknown format, or one that cannot carry this run's record kind
            (a ``ConfigError`` that prints as a plain usage line).
        GateFailed: the gate refused, or records break the target's limits (ids named).
    """
    run_dir = Path(run_dir)
    if fmt not in FORMATS:
        raise ExportUsageError(f"`--format`: unknown export format `{fmt}`; expected one of {', '.join(FORMATS)}")
    if not 0 <= validation < 1:
        raise ExportUsageError(f"`--validation`: expected a share in [0, 1), got {validation}")
    manifest = read_manifest(run_dir)
    kind: Kind = manifest["kind"]
    if kind not in LIMITS[fmt].kinds:
        fits = [f for f, lim in LIMITS.items() if kind in lim.kinds]
        raise ExportUsageError(f"`--format {fmt}` cannot carry {kind} records; for a {kind} run use one of {', '.join(fits)}")
    verdict, warning = _gate(run_dir, unvalidated=unvalidated)
    df = load_dataset(run_dir)
    check_records(fmt, df, kind, max_tokens=max_tokens)
    seed = _run_seed(run_dir) if seed is None else seed
    split = assign_splits(df, validation=validation, seed=seed, kind=kind)
    parts = {s: df.filter(split == s) for s in SPLITS if (split == s).any()}
    balance: dict[str, Any] = {}
    notes: tuple[str, ...] = ()
    if fmt not in ("hf", "parquet"):  # JSONL records carry no extra columns
        parts, balance, notes = _balance_in_records(fmt, parts)
    out = run_dir / "dataset" / "exports" / fmt
    fingerprint = frame_fingerprint(df)
    with atomic_dir(out) as tmp:
        files = _write_files(fmt, parts, kind, tmp)
        ids = pl.concat([p.select("id").with_columns(split=pl.lit(s), line=pl.int_range(pl.len())) for s, p in parts.items()])
        ids.write_parquet(tmp / "ids.parquet", statistics=False)
        info = {
            "format": fmt,
            "kind": kind,
            "form": detect_form(kind, df.columns).name,
            "run_id": manifest["run_id"],
            "dataset_fingerprint": fingerprint,
        }
        info |= {
            "verdict": verdict,
            "gate": warning,
            "seed": seed,
            "validation": validation,
            "stratify": "label" if kind == "classification" and "label" in df.columns else None,
            "splits": files,
            "limits": asdict(LIMITS[fmt]),
            "balance": balance,
        }
        write_json(tmp / "export.json", info)
    rows = {s: p.height for s, p in parts.items()}
    manifest = read_manifest(run_dir)
    exports = {
        **manifest.get("exports", {}),
        fmt: {"path": f"dataset/exports/{fmt}", "verdict": verdict, "dataset_fingerprint": fingerprint, "rows": rows},
    }
    sensitive = manifest.get("sensitive_paths", [])
    if str(DATASET) in sensitive:  # raw text in, raw text out: `tuneprep clean` removes the exports too
        sensitive = [*sensitive, *(f for f in export_files(run_dir) if f not in sensitive)]
    update_manifest(run_dir, exports=exports, sensitive_paths=sensitive)
    return ExportResult(fmt, out, rows, verdict, fingerprint, warning, notes)


def _balance_in_records(fmt: str, parts: dict[str, pl.DataFrame]) -> tuple[dict[str, pl.DataFrame], dict[str, Any], tuple[str, ...]]:
    """The balance stage's columns in a JSONL format: ``repeat`` becomes copies, ``sample_weight`` cannot travel.

    Training rows are copied ``repeat`` times (copy k of every row after all copies k-1,
    as ``train`` does); validation rows are not. Weights other than 1 are reported, since
    no JSONL target takes a per-record weight.
    """
    train = parts.get("train")
    balance: dict[str, Any] = {}
    notes: list[str] = []
    if train is not None and "repeat" in train.columns and train["repeat"].fill_null(1).max() > 1:  # type: ignore[operator]
        expanded = train[copy_order(train["repeat"].fill_null(1).clip(lower_bound=1).to_list())]
        balance["repeat_added_rows"] = expanded.height - train.height
        notes.append(f"`repeat`: {balance['repeat_added_rows']} copies of training rows written (validation rows are not copied)")
        parts = {**parts, "train": expanded}
    weighted = any("sample_weight" in p.columns and (p["sample_weight"].fill_null(1.0) != 1.0).any() for p in parts.values())
    if weighted:
        balance["sample_weight"] = "not carried"
        notes.append(
            f"`sample_weight`: `{fmt}` records take no per-record weight, so the balance stage's weights are not in this export; "
            "export `parquet` or `hf`, or train with `tuneprep train`, to use them"
        )
    return parts, balance, tuple(notes)


# ---------------------------------------------------------------------------- reading back
def _from_turns(kind: str, form: str, system: str | None, turns: list[tuple[str, str]]) -> dict[str, Any]:
    if kind == "classification":
        return {"text": turns[0][1], "label": turns[1][1]}
    if form == "messages":
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": r, "content": t} for r, t in turns]
        return {"messages": msgs}
    return {"system": system, "prompt": turns[0][1], "completion": turns[1][1]}


def row_of(fmt: str, record: dict[str, Any], kind: str, form: str) -> dict[str, Any]:
    """The dataset columns a record stands for (the inverse of ``record_of``; bedrock-ft keeps ``system`` folded into the prompt)."""
    if fmt == "bedrock-cpt":
        return {"text": record["input"]}
    if fmt == "openai-preference":
        return {
            "prompt": record["input"]["messages"][-1]["content"],
            "chosen": record["preferred_output"][0]["content"],
            "rejected": record["non_preferred_output"][0]["content"],
        }
    if fmt == "bedrock-ft":
        return _from_turns(kind, form, None, [("user", record["prompt"]), ("assistant", record["completion"])])
    if fmt == "bedrock-conversation":
        system = record["system"][0]["text"] if record.get("system") else None
        return _from_turns(kind, form, system, [(m["role"], m["content"][0]["text"]) for m in record["messages"]])
    msgs = record["messages"]
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    return _from_turns(kind, form, system, [(m["role"], m["content"]) for m in msgs[1 if system else 0 :]])


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def read_export(path: Path) -> pl.DataFrame:
    """Re-read an export directory as ``id``, ``split`` and the dataset's columns, train rows first."""
    path = Path(path)
    info = json.loads((path / "export.json").read_text(encoding="utf-8"))
    ids = pl.read_parquet(path / "ids.parquet")
    readers: dict[str, Callable[[str], pl.DataFrame]] = {
        "parquet": lambda s: pl.read_parquet(path / f"{s}.parquet"),
        "hf": lambda s: _read_hf(path, s),
    }
    frames = []
    for split, entry in info["splits"].items():
        if info["format"] in readers:
            part = readers[info["format"]](split)
        else:
            rows = [row_of(info["format"], rec, info["kind"], info["form"]) for rec in _jsonl_rows(path / entry["file"])]
            part = pl.DataFrame(rows).with_columns(ids.filter(pl.col("split") == split).sort("line")["id"])
        frames.append(part.with_columns(split=pl.lit(split)))
    return pl.concat(frames, how="diagonal_relaxed")


def _read_hf(path: Path, split: str) -> pl.DataFrame:
    import datasets

    frame = datasets.load_from_disk(str(path))[split].to_polars()
    assert isinstance(frame, pl.DataFrame)
    return frame
