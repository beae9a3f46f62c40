"""normalize is safe by default: code keeps its shape, only invisible noise goes."""

from __future__ import annotations

import ast
import re
import unicodedata
from typing import Any

import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.core.stage import StageContext
from curation.stages.normalize import NormalizeConfig, normalize
from curation.stages.normalize.stage import normalize_texts

DEFAULT = NormalizeConfig()
OPT_IN = NormalizeConfig(collapse_spaces=True, max_blank_lines=1)

PYTHON = '''import math


class Circle:
    """A circle."""

    def __init__(self, r):
        self.r = r

    def area(self):
        if self.r < 0:
            raise ValueError("negative  radius")  # two spaces inside the string


        return math.pi * self.r ** 2
'''
YAML = """steps:
  - name: build
    run: |
      make  all
      make test
  - name: deploy
    with:
      env:   prod
"""
MAKEFILE = "all: build\n\nbuild:\n\tgcc -o app main.c\n\t@echo   done\n\nclean:\n\trm -f app\n"
MARKDOWN = (
    "Here is the fix:\n\n```python\ndef f(x):\n    return x\n\n\n\n    # still f\n```\n\nThen   run it.\n\n~~~\n\tindented  with a tab\n~~~"
)


@pytest.mark.parametrize("cfg", [DEFAULT, OPT_IN], ids=["default", "opt_in"])
def test_python_keeps_its_indentation_and_still_parses(cfg: NormalizeConfig) -> None:
    noisy = PYTHON.replace("\n", "  \r\n").replace("import math", "\ufeffimport\u200b math")
    (out,) = normalize_texts([noisy], cfg)
    if cfg is DEFAULT:
        assert out == PYTHON.rstrip("\n")
    assert [_lead(line) for line in out.split("\n") if line] == [_lead(line) for line in PYTHON.split("\n") if line]
    assert '"negative  radius"' in out  # indented lines are code: the opt-in leaves them alone
    ast.parse(out)


@pytest.mark.parametrize("cfg", [DEFAULT, OPT_IN], ids=["default", "opt_in"])
def test_yaml_and_makefile_keep_their_exact_indentation(cfg: NormalizeConfig) -> None:
    yml, make = normalize_texts([YAML, MAKEFILE], cfg)
    assert [_lead(line) for line in yml.split("\n")] == [_lead(line) for line in YAML.rstrip("\n").split("\n")]
    assert (
        yaml.safe_load(yml) == yaml.safe_load(YAML)
        if cfg is DEFAULT
        else yaml.safe_load(yml)["steps"][0]["run"] == "make  all\nmake test\n"
    )
    assert make == MAKEFILE.rstrip("\n")  # recipe lines start with a tab, and must
    assert "\tgcc -o app main.c" in make.split("\n")


def test_markdown_fences_and_blank_lines_inside_code_are_kept() -> None:
    (default,) = normalize_texts([MARKDOWN], DEFAULT)
    assert default == MARKDOWN
    (opt_in,) = normalize_texts([MARKDOWN], OPT_IN)
    assert "```python\ndef f(x):\n    return x\n\n\n\n    # still f\n```" in opt_in  # code: untouched
    assert "~~~\n\tindented  with a tab\n~~~" in opt_in
    assert "Then run it." in opt_in  # prose: collapsed


def test_nfc_zero_width_and_control_characters() -> None:
    decomposed = "cafe\u0301 nai\u0308ve"
    out = normalize_texts(
        [
            decomposed,
            "a\u200bb\u2060c\ufeffd",
            "bell\x07 and\x00 nul\x1b[0m",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u200cedge\u200d ok",
        ],
        DEFAULT,
    )
    assert out[0] == unicodedata.normalize("NFC", decomposed) == "caf\u00e9 na\u00efve"
    assert out[1] == "abcd"
    assert out[2] == "bell and nul[0m"
    assert out[3] == "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # the Persian non-joiner between letters is spelling
    assert out[4] == "edge ok"  # at a word's edge it is noise


def test_line_endings_and_trailing_whitespace() -> None:
    assert normalize_texts(["\n\n  first\r\nsecond \t\rthird\n\n"], DEFAULT) == ["  first\nsecond\nthird"]


def test_opt_in_never_touches_line_starts() -> None:
    (out,) = normalize_texts(["Total:    3   items\n  *  a   b\n\n\n\nend"], OPT_IN)
    assert out == "Total: 3 items\n  * a b\n\nend"


def test_stage_counts_rewritten_rows_and_drops_rows_emptied(tmp_path: Any) -> None:
    df = pl.DataFrame(
        {
            "id": ["a", "b", "c"],
            "prompt": ["Write f", "Sort a list\u200b", "\u200b"],
            "completion": ["def f():\n    pass", "sorted(xs)", "x"],
        }
    )
    result = normalize(df, DEFAULT, StageContext(kind="instruction"))
    assert result.kept["id"].to_list() == ["a", "b"]
    assert result.kept["completion"][0] == "def f():\n    pass"
    assert result.dropped.select("id", "reason").rows() == [("c", "empty_after_normalize")]
    assert result.stats["rows_rewritten"] == 2 and result.stats["values_changed"] == 2


def test_messages_content_is_normalised_and_roles_kept() -> None:
    msgs = [{"role": "user", "content": "fix\u200b  this\r\n"}, {"role": "assistant", "content": "    indented  code  \r\n"}]
    df = pl.DataFrame({"id": ["m"], "messages": [msgs]})
    result = normalize(df, DEFAULT, StageContext(kind="instruction"))
    assert result.kept["messages"].to_list() == [
        [{"role": "user", "content": "fix  this"}, {"role": "assistant", "content": "    indented  code"}]
    ]


# ---- properties ----------------------------------------------------------------------

_ALPHABET = st.sampled_from(
    [
        " ",
        "  ",
        "\t",
        "\n",
        "\r",
        "\r\n",
        "a",
        "b",
        "x =",
        "é",
        "e\u0301",
        "\u200b",
        "\u200c",
        "\u200d",
        "\x00",
        "\x07",
        "\x0b",
        "\x85",
        "\ufeff",
        "\u00a0",
        "```",
        "~~~",
        "#",
        "1",
    ]
)
_TEXTS = st.lists(_ALPHABET, max_size=40).map("".join)
_CONFIGS = st.sampled_from([DEFAULT, OPT_IN, NormalizeConfig(collapse_spaces=True), NormalizeConfig(max_blank_lines=0)])


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _leads(text: str) -> list[str]:
    """Leading spaces and tabs of every non-blank line, lines split at any line ending."""
    removed = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u180e\u200b\u2060\ufeff]", "", text)
    lines = [line for line in re.split(r"\r\n|\r|\n", removed) if re.sub(r"[\s\u200c\u200d]", "", line)]
    # a zero-width joiner inside the indentation is invisible: it is not indentation
    return [line[: len(line) - len(line.lstrip(" \t\u200c\u200d"))].replace("\u200c", "").replace("\u200d", "") for line in lines]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(_TEXTS, min_size=1, max_size=5), cfg=_CONFIGS)
def test_normalize_is_idempotent_and_never_changes_leading_whitespace(texts: list[str], cfg: NormalizeConfig) -> None:
    once = normalize_texts(texts, cfg)
    assert normalize_texts(once, cfg) == once
    for before, after in zip(texts, once, strict=True):
        assert _leads(after) == _leads(before)
