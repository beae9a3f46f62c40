"""Does curation leave code answers intact? `normalize` and the response audit on code-heavy rows.

Generated Alpaca-style rows (``tests.data.alpaca_rows``: about three in four code answers
in Python, JavaScript, Java, C, Bash, Ruby, SQL and YAML, some fenced, some with CRLF,
trailing spaces or a pasted zero-width space) go through:

* ``normalize`` with today's defaults, and with the rules it had before (runs of spaces
  and tabs collapsed everywhere, spaces around newlines removed, at most one blank line,
  the whole value stripped): rows rewritten, answers whose leading whitespace changed on
  any line, and Python answers that parse (``ast``) before and after;
* the response audit's ``response_truncated`` on the complete answers, today's rules vs
  the previous prose-only rule (ends on a letter, digit, comma, colon or hyphen).

Run: ``.venv/bin/python -m tests.benchmarks.eval_code_answers [--rows 2000]``
"""

from __future__ import annotations

import argparse

import polars as pl

from curation.stages.label_audit.response_audit import ResponseAuditConfig, response_findings
from curation.stages.normalize.stage import NormalizeConfig, normalize_texts
from tests.data.alpaca_rows import alpaca_rows, python_parses


def previous_normalize(texts: list[str]) -> list[str]:
    """The stage's rules before it became safe by default (its defaults then)."""
    expr = (
        pl.col("t")
        .str.normalize("NFC")
        .str.replace_all(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]", "")
        .str.replace_all(r"\r\n?", "\n")
        .str.replace_all(r"[ \t\u00a0]+", " ")
        .str.replace_all(r" *\n *", "\n")
        .str.replace_all(r"\n{3,}", "\n\n")
        .str.strip_chars()
    )
    return pl.DataFrame({"t": texts}).select(expr).to_series().to_list()


def previous_truncated(answers: list[str], min_words: int = 8) -> int:
    """How many answers the previous rule called truncated (mid-sentence or an odd number of fences)."""
    r = pl.col("r")
    last = r.str.strip_chars_end().str.extract(r"([^\n]*)$")
    mid = (
        r.str.contains(r"[\p{L}\p{N},:\-]\s*$")
        & ~last.str.contains(r"^\s*(?:[-*+•]|\d+[.)]|#|\|)")
        & (r.str.count_matches(r"\S+") >= min_words)
    )
    flagged = mid | ((r.str.count_matches("```") % 2) == 1)
    return int(pl.DataFrame({"r": answers}).select(flagged.sum()).item())


def _leads(text: str) -> list[str]:
    return [
        line[: len(line) - len(line.lstrip(" \t"))] for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    rows = alpaca_rows(args.rows, seed=0)
    answers = [r["output"] for r in rows]
    python = [i for i, r in enumerate(rows) if r["language"] == "python"]
    code = [i for i, r in enumerate(rows) if r["language"] != "prose"]
    print(
        f"{len(rows)} rows, {len(code)} code answers, {len(python)} in Python; {sum(python_parses(answers[i]) for i in python)} Python answers parse as given"
    )
    print(f"{'normalize':34} {'rows rewritten':>15} {'indent changed':>15} {'Python parses':>14}")
    for name, out in (("ours (defaults)", normalize_texts(answers, NormalizeConfig())), ("previous defaults", previous_normalize(answers))):
        rewritten = sum(a != b for a, b in zip(answers, out, strict=True))
        indent = sum(_leads(a) != _leads(b) for a, b in zip(answers, out, strict=True))
        parses = sum(python_parses(out[i]) for i in python)
        print(f"{name:34} {rewritten:>15} {indent:>15} {parses:>8} / {len(python)}")
    complete = pl.DataFrame(
        {"id": [str(i) for i in code], "prompt": [rows[i]["instruction"] for i in code], "completion": [answers[i] for i in code]}
    )
    ours = response_findings(complete, ResponseAuditConfig()).filter(pl.col("issue") == "response_truncated").height
    print(
        f"\nresponse_truncated on {len(code)} complete code answers: ours {ours}, previous rule {previous_truncated(complete['completion'].to_list())}"
    )


if __name__ == "__main__":
    main()
