"""A `.json` array's quarantine rows name the file line where the element starts, not its index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curation.core.ingest import _element_lines, ingest


def test_json_array_quarantine_line_is_the_file_line(tmp_path: Path) -> None:
    records = [{"text": "first"}, 7, {"text": "second\nwith a newline inside"}, {"label": "no text"}]
    (tmp_path / "a.json").write_text(json.dumps(records, indent=2))  # elements start on lines 2, 5, 6, 9
    got = ingest([tmp_path / "a.json"], "text", {})
    assert got.rows["text"].to_list() == ["first", "second\nwith a newline inside"]
    assert got.quarantine["line"].to_list() == [5, 9]
    assert got.quarantine["error"][0] == "expected a JSON object, got int" and "`text`" in got.quarantine["error"][1]


def test_data_key_form_counts_lines_of_the_whole_file(tmp_path: Path) -> None:
    text = '{"meta": {"note": "a\\nb", "x": [1,\n2]},\n "data": [\n  {"text": "ok"},\n  "oops"\n ]}\n'
    (tmp_path / "d.json").write_text(text)
    got = ingest([tmp_path / "d.json"], "text", {})
    assert got.quarantine["line"].to_list() == [5]


@pytest.mark.parametrize(
    ("text", "keyed", "lines"),
    [
        ("[]", False, []),
        ("[1, 2,\n3]", False, [1, 1, 2]),
        ('\n\n[\n"a",\n\n{"b": [1,\n2]},\n"c"]', False, [4, 6, 8]),
        ('{"data": [1], "data": [\n2]}', True, [2]),  # json.loads keeps the last "data"
    ],
)
def test_element_lines(text: str, keyed: bool, lines: list[int]) -> None:
    assert json.loads(text) is not None
    assert list(_element_lines(text, keyed=keyed)) == lines
