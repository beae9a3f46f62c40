"""The v4 dataset fingerprint: per-row digests ordered by id; layout-independent, change-sensitive, streamed from files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from curation.core.errors import RunError
from curation.core.fingerprint import HEADER, canonical_type, file_fingerprint, frame_fingerprint


def _frame(n: int = 30) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"r{i:03d}" for i in range(n)],
            "text": [f"line {i}\nwith a newline\r, a tab\t and \u2028 and é" if i % 4 == 0 else f"text {i}" for i in range(n)],
            "score": [[None, float("nan"), float("inf"), float("-inf"), -0.0, 0.1][i % 6] for i in range(n)],
            "votes": pl.Series([i % 7 for i in range(n)], dtype=pl.UInt8),
            "messages": [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(n)],
        }
    )


def test_definition_is_sha256_over_header_then_row_digests_ordered_by_id_and_digest() -> None:
    df = pl.DataFrame({"text": ["b", "a", "c", "a"], "id": ["y", "x", "x", "z"], "n": [2, 1, 3, 1]})
    lines = [json.dumps(dict(sorted(row.items())), separators=(",", ":")).encode() for row in df.iter_rows(named=True)]
    rows = sorted((row["id"], hashlib.sha256(line).digest()) for row, line in zip(df.iter_rows(named=True), lines, strict=True))
    head = {"format": HEADER, "columns": {"id": "string", "n": "integer", "text": "string"}, "rows": 4}
    h = hashlib.sha256(json.dumps(head, separators=(",", ":")).encode())
    for _, digest in rows:
        h.update(digest)
    assert frame_fingerprint(df) == h.hexdigest()


def test_row_order_column_order_and_file_layout_do_not_count(tmp_path: Path) -> None:
    df = _frame()
    fp = frame_fingerprint(df)
    assert fp == frame_fingerprint(df.reverse()) == frame_fingerprint(df.sample(fraction=1.0, shuffle=True, seed=3))
    assert fp == frame_fingerprint(df.select(reversed(df.columns)))
    df.write_parquet(tmp_path / "one.parquet", row_group_size=7)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, df.height, 11)):
        df.reverse().slice(start, 11).write_parquet(parts / f"part-{i:05d}.parquet")
    (parts / "_SUCCESS").write_text("")
    assert file_fingerprint(tmp_path / "one.parquet") == file_fingerprint(parts) == fp


def test_rows_with_the_same_id_are_ordered_by_digest() -> None:
    df = pl.DataFrame({"id": ["a", "a", "a", None, None], "v": [1, 2, 3, 4, 5]})
    assert frame_fingerprint(df) == frame_fingerprint(df.reverse()) == frame_fingerprint(df.sample(fraction=1.0, shuffle=True, seed=1))
    no_id = df.rename({"id": "key"})
    assert frame_fingerprint(no_id) == frame_fingerprint(no_id.reverse())


def test_a_changed_value_row_count_or_type_changes_it() -> None:
    df = _frame()
    fp = frame_fingerprint(df)
    changed = {
        "value": df.with_columns(pl.when(pl.col("id") == "r005").then(pl.lit("text 55")).otherwise("text").alias("text")),
        "nested value": df.with_columns(pl.col("messages").list.reverse()),
        "float text": df.with_columns(pl.col("score").fill_nan(None)),
        "added row": pl.concat([df, df.tail(1).with_columns(pl.lit("r999").alias("id"))]),
        "repeated row": pl.concat([df, df.tail(1)]),
        "removed row": df.head(df.height - 1),
        "column type": df.with_columns(pl.col("votes").cast(pl.String)),
        "float width": df.with_columns(pl.col("score").cast(pl.Float32)),
        "renamed column": df.rename({"votes": "vote"}),
        "moved value": df.with_columns(pl.col("text").shift(1, fill_value="text 29")),
    }
    fps = {name: frame_fingerprint(other) for name, other in changed.items()}
    assert fp not in fps.values() and len(set(fps.values())) == len(fps)


def test_empty_frames_differ_by_schema_only() -> None:
    assert frame_fingerprint(pl.DataFrame({"id": [], "t": []}, schema={"id": pl.String, "t": pl.String})) == frame_fingerprint(
        pl.DataFrame({"t": [], "id": []}, schema={"t": pl.Categorical, "id": pl.String})
    )
    assert frame_fingerprint(pl.DataFrame(schema={"id": pl.String})) != frame_fingerprint(pl.DataFrame(schema={"id": pl.Int64}))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (pl.Int8, pl.Int64),
        (pl.UInt8, pl.Int16),
        (pl.UInt64, pl.Int32),
        (pl.String, pl.Categorical),
        (pl.List(pl.Int64), pl.Array(pl.Int32, 2)),
        (pl.Datetime("ns", "UTC"), pl.Datetime("us", "Europe/Paris")),
    ],
)
def test_engine_specific_widths_and_encodings_share_a_canonical_type(a: pl.DataType, b: pl.DataType) -> None:
    assert canonical_type(a) == canonical_type(b)


def test_canonical_names_spell_nested_types() -> None:
    dtype = pl.List(pl.Struct({"role": pl.String, "score": pl.Float32, "tags": pl.List(pl.Categorical)}))
    assert canonical_type(dtype) == "array<struct<role:string,score:float,tags:array<string>>>"
    assert canonical_type(pl.Float64) == "double" and canonical_type(pl.Decimal(10, 2)) == "decimal(10,2)"
    assert canonical_type(pl.Datetime("us")) == "timestamp_ntz" and canonical_type(pl.Binary) == "binary"


def test_same_rows_in_other_widths_and_zones_give_the_same_fingerprint() -> None:
    import datetime as dt

    df = pl.DataFrame(
        {"id": ["a", "b"], "n": [1, 2], "t": [dt.datetime(2024, 1, 1, 12), None], "b": [b"\x00\xff", None]},
        schema_overrides={"t": pl.Datetime("us", "UTC")},
    )
    other = df.with_columns(pl.col("n").cast(pl.UInt16), pl.col("t").dt.convert_time_zone("Asia/Tokyo").dt.cast_time_unit("ns"))
    assert frame_fingerprint(df) == frame_fingerprint(other)
    assert frame_fingerprint(df) != frame_fingerprint(df.with_columns(pl.col("b").reverse()))


def test_file_fingerprint_equals_frame_fingerprint_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import curation.core.fingerprint as fingerprint

    monkeypatch.setattr(fingerprint, "BATCH_ROWS", 4)  # many batches: ids and digests gathered across them
    df = _frame(50)
    df.write_parquet(tmp_path / "d.parquet", row_group_size=9)
    assert file_fingerprint(tmp_path / "d.parquet") == frame_fingerprint(df)
    df.head(0).write_parquet(tmp_path / "empty.parquet")
    assert file_fingerprint(tmp_path / "empty.parquet") == frame_fingerprint(df.head(0))


def test_a_damaged_or_missing_file_is_a_run_error(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    _frame().write_parquet(path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(RunError, match="is not a readable parquet file"):
        file_fingerprint(path)
    (tmp_path / "parts").mkdir()
    with pytest.raises(RunError, match=r"no \.parquet files"):
        file_fingerprint(tmp_path / "parts")
