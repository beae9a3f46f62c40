from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.core.errors import InputError
from curation.core.ingest import content_id, ingest, read_any, resolve_inputs
from tests.data.jsonl_files import write_jsonl


def _ingest(path: Path, kind: str = "classification", fields: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return ingest([path], kind, fields or {})  # type: ignore[arg-type]


def test_jsonl_good_and_bad_lines_are_accounted(tmp_path: Path) -> None:
    rows = [
        {"text": "hello there", "label": "a"},
        b'{"text": "broken", ',
        b'{"text": "bad \xff byte", "label": "a"}',
        {"label": "a"},
        {"text": 5, "label": "a"},
        {"text": "   ", "label": "a"},
        {"text": "labels may be ints", "label": 3},
        [1, 2],
    ]
    data = _ingest(write_jsonl(tmp_path / "in.jsonl", rows))
    assert data.rows_read == 8 and data.rows.height == 2 and data.quarantine.height == 6
    errors = data.quarantine["error"].to_list()
    assert errors[0].startswith("invalid JSON")
    assert "not valid UTF-8" in errors[1]
    assert errors[2].startswith("missing required field `text`")
    assert errors[3] == "field `text` must be a string, got number"
    assert errors[4] == "field `text` is empty"
    assert errors[5] == "expected a JSON object per line, got list"
    assert data.quarantine["line"].to_list() == [2, 3, 4, 5, 6, 8]
    assert data.rows["label"].to_list() == ["a", "3"]


def test_field_renames_and_extras(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [{"body": "hi", "category": "x", "source": "mail", "meta": {"k": 1}}])
    data = _ingest(path, fields={"text": "body", "label": "category"})
    assert data.rows.columns == ["id", "text", "label", "meta", "source"]
    assert data.rows.row(0, named=True)["meta"] == '{"k": 1}'


def test_missing_mapped_field_names_source(tmp_path: Path) -> None:
    data = _ingest(write_jsonl(tmp_path / "in.jsonl", [{"text": "x"}, {"text": "y", "category": "b"}]), fields={"label": "category"})
    assert data.quarantine["error"][0] == "missing required field `label` (mapped from `category`)"
    with pytest.raises(InputError, match="`input.fields.label` names column `category`, which no input record has"):
        _ingest(write_jsonl(tmp_path / "none.jsonl", [{"text": "x"}]), fields={"label": "category"})


def test_null_required_field_is_not_called_missing(tmp_path: Path) -> None:
    rows = [{"text": "x", "label": None}, {"body": "y", "category": None}, {"text": "z", "label": " "}]
    data = _ingest(write_jsonl(tmp_path / "in.jsonl", rows[:1]))
    assert data.quarantine["error"].to_list() == ["field `label` is null; give every row a `label`"]
    mapped = _ingest(write_jsonl(tmp_path / "m.jsonl", rows[1:2]), fields={"text": "body", "label": "category"})
    assert mapped.quarantine["error"].to_list() == ["field `label` (mapped from `category`) is null; give every row a `label`"]
    (tmp_path / "a.csv").write_text("text,label\nx,\n")  # an empty CSV cell reads as null
    assert ingest([tmp_path / "a.csv"], "classification", {}).quarantine["error"].to_list() == [
        "field `label` is null; give every row a `label`"
    ]
    blank = _ingest(write_jsonl(tmp_path / "b.jsonl", rows[2:]))  # a blank label is label_audit's `label_missing`
    assert blank.quarantine.is_empty() and blank.rows["label"].to_list() == [" "]


def test_quarantined_rows_keep_a_readable_id(tmp_path: Path) -> None:
    rows = [
        {"id": "bad2", "text": "x"},
        {"id": 7, "text": 5, "label": "a"},
        {"id": "ok", "text": "y", "label": "a"},
        {"id": "ok", "text": "z", "label": "a"},
        {"id": ["no"], "text": "x", "label": "a"},
        {"id": True, "text": "x"},
        {"text": "x"},
        b'{"id": "cut", "text": ',
    ]
    data = _ingest(write_jsonl(tmp_path / "in.jsonl", rows))
    assert data.quarantine.select("line", "id").rows() == [(1, "bad2"), (2, "7"), (4, "ok"), (5, None), (6, None), (7, None), (8, None)]
    renamed = _ingest(write_jsonl(tmp_path / "r.jsonl", [{"uid": "u1", "text": "x"}]), fields={"id": "uid"})
    assert renamed.quarantine["id"].to_list() == ["u1"]


def test_ids_given_hashed_stable_and_unique(tmp_path: Path) -> None:
    rows = [
        {"text": "same", "label": "a"},
        {"text": "same", "label": "a"},
        {"id": 7, "text": "x", "label": "b"},
        {"id": "7", "text": "y", "label": "b"},
    ]
    data = _ingest(write_jsonl(tmp_path / "in.jsonl", rows))
    ids = data.rows["id"].to_list()
    base = content_id({"text": "same", "label": "a", "annotator": None}, ["text", "label", "annotator"])
    assert ids == [base, f"{base}-2", "7"]
    assert "duplicate `id` '7'" in data.quarantine["error"][0]
    again = _ingest(write_jsonl(tmp_path / "again.jsonl", rows))
    assert again.rows["id"].to_list() == ids


def test_csv_parquet_json_forms(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('prompt,response,score\n"Hi, you",hello,4\nq,r,notanumber\nq,r,1,extra\n')
    csv = ingest([tmp_path / "a.csv"], "ratings", {})
    assert csv.form.name == "scores" and csv.rows["score"].to_list() == [4.0]
    assert [e.split(",")[0] for e in csv.quarantine["error"]] == ["field `score` must be a number", "row has 4 fields"]
    pl.DataFrame({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]}).write_parquet(tmp_path / "b.parquet")
    pq = ingest([tmp_path / "b.parquet"], "preference", {})
    assert pq.rows.select("prompt", "chosen", "rejected").row(0) == ("p", "c", "r")
    (tmp_path / "c.json").write_text(
        json.dumps(
            [
                {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
                {"messages": [{"role": "robot", "content": "x"}]},
            ]
        )
    )
    js = ingest([tmp_path / "c.json"], "instruction", {})
    assert js.form.name == "messages" and js.rows.height == 1
    assert "`messages[0].role` must be system, user or assistant" in js.quarantine["error"][0]


def test_each_row_is_judged_in_its_own_form_and_the_most_common_form_is_kept(tmp_path: Path) -> None:
    pc = [{"id": f"p{i}", "prompt": f"q{i}", "completion": f"a{i}"} for i in range(8)]
    chat = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    rows = [*pc[:3], {"id": "m1", "messages": chat}, *pc[3:], {"id": "both", "messages": chat, "prompt": "q", "completion": "a"}]
    rows.append({"id": "half", "prompt": "q", "completion": None, "messages": None})
    data = ingest([write_jsonl(tmp_path / "in.jsonl", rows)], "instruction", {})
    assert data.form.name == "prompt_completion" and data.rows["id"].to_list() == [f"p{i}" for i in range(8)]
    assert data.quarantine.select("line", "id", "error").rows() == [
        (
            4,
            "m1",
            "row is in the `messages` form, but the dataset keeps the `prompt_completion` form (8 rows); convert this row or curate it in a separate run",
        ),
        (10, "both", "row has the fields of more than one form (`messages`, `prompt_completion`); give each row the fields of one form"),
        (11, "half", "field `completion` is null; give every row a `completion`"),
    ]
    assert data.quarantine["raw"][0] == json.dumps({"id": "m1", "messages": chat})
    assert data.rows_read == data.rows.height + data.quarantine.height


def test_the_kept_form_is_the_most_common_one_after_renames(tmp_path: Path) -> None:
    rows = [{"q": "p", "a": "c"}] + [{"messages": [{"role": "user", "content": f"m{i}"}]} for i in range(2)]
    data = ingest([write_jsonl(tmp_path / "in.jsonl", rows)], "instruction", {"prompt": "q", "completion": "a"})
    assert data.form.name == "messages" and data.rows.height == 2 and data.quarantine["line"].to_list() == [1]
    tie = ingest([write_jsonl(tmp_path / "tie.jsonl", rows[:2])], "instruction", {"prompt": "q", "completion": "a"})
    assert tie.form.name == "messages" and tie.quarantine["error"][0].startswith("row is in the `prompt_completion` form")
    scores = [{"prompt": "p", "response": "r", "score": 1}, {"prompt": "p", "response_a": "a", "response_b": "b", "winner": "a"}]
    ratings = ingest([write_jsonl(tmp_path / "r.jsonl", [scores[1], *scores, scores[1]])], "ratings", {})
    assert ratings.form.name == "pairwise" and ratings.rows.height == 3 and ratings.quarantine["line"].to_list() == [2]


_CHAT = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
_INSTRUCTION_ROWS = {
    "prompt_completion": {"prompt": "q", "completion": "a"},
    "messages": {"messages": _CHAT},
    "both": {"prompt": "q", "completion": "a", "messages": _CHAT},
    "null": {"prompt": "q", "completion": None},
    "neither": {"text": "q"},
}


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(sorted(_INSTRUCTION_ROWS)), st.sampled_from([None, "a", "b", 1])),
        min_size=1,
        max_size=12,
    )
)
def test_instruction_books_balance_whatever_the_mix_of_forms(
    tmp_path_factory: pytest.TempPathFactory, picks: list[tuple[str, Any]]
) -> None:
    rows = [{**_INSTRUCTION_ROWS[shape], **({} if given_id is None else {"id": given_id})} for shape, given_id in picks]
    data = ingest([write_jsonl(tmp_path_factory.mktemp("mix") / "in.jsonl", rows)], "instruction", {})
    assert data.rows.height + data.quarantine.height == data.rows_read == len(rows)
    assert data.rows["id"].is_unique().all() and data.quarantine["line"].to_list() == sorted(set(data.quarantine["line"]))
    valid = {
        form: len({(i, None) if given_id is None else str(given_id) for i, (shape, given_id) in enumerate(picks) if shape == form})
        for form in ("messages", "prompt_completion")
    }
    assert data.rows.height == max(valid.values())  # a repeated id within the kept form is quarantined
    assert data.form.name == ("messages" if valid["messages"] >= valid["prompt_completion"] else "prompt_completion")


def test_invalid_utf8_in_csv_is_quarantined(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"text,label\nfine,a\nbad \xff,b\n")
    data = ingest([tmp_path / "a.csv"], "classification", {})
    assert data.rows.height == 1 and "not valid UTF-8" in data.quarantine["error"][0]


def test_json_syntax_errors_read_as_one_sentence(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "in.jsonl", [b'{"text": "cut off here', b'{"text": "tab\there", "label": "a"}'])
    assert _ingest(path).quarantine["error"].to_list() == [
        "invalid JSON: invalid control character at column 23",  # the line break inside the open string
        "invalid JSON: invalid control character at column 14",
    ]
    (tmp_path / "bad.json").write_text('[{"text": "cut off here')
    with pytest.raises(InputError, match=r"\(unterminated string starting at line 1\)"):
        ingest([tmp_path / "bad.json"], "text", {})


def test_json_numbers_too_long_for_python_are_not_a_crash(tmp_path: Path) -> None:
    limit = sys.get_int_max_str_digits()  # beyond it json.loads raises a plain ValueError
    huge = "9" * (limit + 1)
    path = write_jsonl(tmp_path / "in.jsonl", [f'{{"text": "x", "label": {huge}}}', {"text": "y", "label": "a"}])
    data = _ingest(path)
    assert data.rows.height == 1 and data.quarantine["error"].to_list() == [f"invalid JSON: a number has more than {limit} digits"]
    (tmp_path / "big.json").write_text(f'[{{"text": "x", "label": {huge}}}]')
    with pytest.raises(InputError, match=f"a number has more than {limit} digits"):
        ingest([tmp_path / "big.json"], "classification", {})


def test_numbers_must_be_finite(tmp_path: Path) -> None:
    rows = [
        b'{"prompt": "p", "response": "r", "score": NaN}',
        b'{"prompt": "p", "response": "r", "score": Infinity}',
        b'{"prompt": "p", "response": "r", "score": -Infinity}',
        {"prompt": "p", "response": "r", "score": "NaN"},
        {"prompt": "p", "response": "r", "score": "inf"},
        {"prompt": "p", "response": "r", "score": 10**400},
        {"prompt": "p", "response": "r", "score": "1e999"},
        {"prompt": "p", "response": "r", "score": "2.5"},
    ]
    data = ingest([write_jsonl(tmp_path / "in.jsonl", rows)], "ratings", {})
    assert data.rows["score"].to_list() == [2.5]
    assert data.quarantine["line"].to_list() == [1, 2, 3, 4, 5, 6, 7]
    assert data.quarantine["error"].to_list() == [
        "field `score` must be a finite number, got NaN",
        "field `score` must be a finite number, got Infinity",
        "field `score` must be a finite number, got -Infinity",
        "field `score` must be a finite number, got the string 'NaN'",
        "field `score` must be a finite number, got the string 'inf'",
        "field `score` must be a finite number, got an integer too large to hold",
        "field `score` must be a finite number, got the string '1e999'",
    ]


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("a.jsonl", b'{"text": "one", "label": "a"}\n{"text": "two", "label": "b"}\n'),
        ("a.json", b'[{"text": "one", "label": "a"}, {"text": "two", "label": "b"}]'),
        ("a.csv", b"text,label\none,a\ntwo,b\n"),
        ("crlf.csv", b"text,label\r\none,a\r\ntwo,b\r\n"),
    ],
    ids=["jsonl", "json", "csv", "csv-crlf"],
)
def test_leading_utf8_bom_is_not_data(tmp_path: Path, name: str, body: bytes) -> None:
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + body)
    data = ingest([tmp_path / name], "classification", {})
    assert data.quarantine.is_empty()
    assert data.rows.select("text", "label").rows() == [("one", "a"), ("two", "b")]
    assert read_any(tmp_path / name).select("text", "label").rows() == [("one", "a"), ("two", "b")]


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        resolve_inputs("missing.jsonl", tmp_path)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="unsupported extension '.txt'"):
        resolve_inputs("a.txt", tmp_path)
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(InputError, match="is empty"):
        resolve_inputs("e.jsonl", tmp_path)
    with pytest.raises(InputError, match="matches no file"):
        resolve_inputs("*.parquet", tmp_path)
    (tmp_path / "bad.json").write_text('{"a": 1}\n{"a": 2}\n')
    with pytest.raises(InputError, match="name it .jsonl"):
        ingest([tmp_path / "bad.json"], "text", {})
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError, match=r"^`input.path` 'folder' is a folder but not a saved Hugging Face dataset .*'folder/\*.jsonl'"):
        resolve_inputs("folder", tmp_path, show_paths=True)


def test_input_without_records_is_one_input_error(tmp_path: Path) -> None:
    (tmp_path / "header.csv").write_text("text,label\r\n")
    with pytest.raises(InputError, match=r"^input has no rows: 'header.csv' holds only a header row; point `input.path`"):
        ingest(resolve_inputs("header.csv", tmp_path), "classification", {}, show_paths=True)
    (tmp_path / "blank.jsonl").write_text("\n\n")
    (tmp_path / "none.json").write_text("[]")
    with pytest.raises(InputError, match=r"^input has no rows: none of the 2 input files holds a record"):
        ingest([tmp_path / "blank.jsonl", tmp_path / "none.json"], "text", {})


def test_glob_reads_files_in_sorted_order(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "2.jsonl", [{"text": "second"}])
    write_jsonl(tmp_path / "d" / "1.jsonl", [{"text": "first"}])
    paths = resolve_inputs("d/*.jsonl", tmp_path)
    assert ingest(paths, "text", {}).rows["text"].to_list() == ["first", "second"]


def test_hugging_face_dataset_saved_to_disk(tmp_path: Path) -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.Dataset.from_dict({"body": ["one", "two", ""], "category": ["a", "b", "c"]}).save_to_disk(str(tmp_path / "hf"))
    paths = resolve_inputs("hf", tmp_path)
    data = ingest(paths, "classification", {"text": "body", "label": "category"})
    assert data.rows["text"].to_list() == ["one", "two"] and data.quarantine["error"].to_list() == ["field `text` is empty"]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_rows_read_in_chunks_equal_rows_read_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    """Ingest holds validated rows as dicts a chunk at a time; chunk boundaries change nothing:
    columns given only late, content ids of repeats, given-id clashes and mixed forms across files."""
    import curation.core.ingest as ingest_module

    rows: list[dict[str, Any]] = []
    for i in range(40):
        row: dict[str, Any] = {"prompt": f"p{i % 6}", "completion": f"c{i % 4}"}
        if i % 5 == 0:  # CSV cannot hold chat messages: rows of no form there
            chat = [{"role": "user", "content": f"m{i}"}, {"role": "assistant", "content": "a"}]
            row = {"text": f"not an instruction {i}"} if suffix == ".csv" else {"messages": chat}
        if i == 33:
            row["late"] = "only here"
        if i in (7, 8, 21):
            row["id"] = "given" if i != 21 else "other"
        rows.append(row)
    paths = []
    for n, part in enumerate((rows[:17], rows[17:])):
        path = tmp_path / f"part{n}{suffix}"
        frame = pl.DataFrame(part, infer_schema_length=None)
        if suffix == ".jsonl":
            write_jsonl(path, part)
        elif suffix == ".csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        paths.append(path)
    whole = ingest(paths, "instruction", {})
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 3)
    chunked = ingest(paths, "instruction", {})
    assert chunked.rows.equals(whole.rows) and chunked.quarantine.equals(whole.quarantine)
    assert chunked.rows.height + chunked.quarantine.height == 40 and chunked.rows_read == 40
    assert "late" in whole.rows.columns and whole.rows["id"].n_unique() == whole.rows.height
    assert whole.quarantine["error"].str.contains("duplicate `id`").sum() == 1
    other_form = whole.quarantine.filter(pl.col("error").str.contains("row is in the `messages` form"))
    assert other_form.height == (0 if suffix == ".csv" else 8) and other_form["raw"].str.contains('"messages"').all()
