"""Evaluation: do no harm. What the text-rewriting stages do to clean text, and PII precision on mixed text.

    .venv/bin/python -m tests.benchmarks.eval_fidelity            # 600 clean + 300 mixed rows
    .venv/bin/python -m tests.benchmarks.eval_fidelity --n 300 --seed 4

The rows (``tests/data/fidelity_corpus.py``) are generated here: code in Python, Java,
JavaScript, SQL and shell (fenced and bare), maths, product and brand names, support
questions and instructions with one-word answers; essentially no personal data. The
mixed set plants personal data (names, phone numbers, e-mails, cards, IBANs, SSNs) into
such rows, with gold spans.

Per stage, each run on the raw rows through its stage function with its default
config (``normalize`` with ``NormalizeConfig()``, ``pii`` with ``PiiConfig()``), and
Presidio's defaults (``AnalyzerEngine`` from its shipped ``conf/default.yaml``, model
swapped for the installed small one, plus ``AnonymizerEngine``) beside ours:

- rows rewritten: share of clean rows whose text changed (target for pii: <= 2%);
- Python still parsing: of the Python answers that parse before (``ast.parse``), the
  share that still parse after;
- PII precision on mixed rows: findings that overlap a planted value / all findings
  (target >= 0.9), and recall: planted values no longer present verbatim.

The normalize figures depend on the normalize stage's defaults (another change makes
them safe); they are reported, not tuned here.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections import Counter
from typing import Any

import polars as pl

from curation.core.stage import StageContext
from curation.stages.normalize.stage import NormalizeConfig, normalize
from curation.stages.pii.engine import offline_presidio
from curation.stages.pii.stage import PiiConfig, mask_value, pii
from tests.benchmarks.eval_pii import presidio_defaults, run_presidio
from tests.data.fidelity_corpus import Row, make_clean, make_mixed

REWRITE_TARGET = 0.02
PRECISION_TARGET = 0.9
PARSE_TARGET = 0.995
_FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)

Spans = list[tuple[int, int, str]]


def frame(rows: list[Row]) -> pl.DataFrame:
    return pl.DataFrame({"id": [f"r{i}" for i in range(len(rows))], "text": [r.text for r in rows]})


def run_stage(name: str, rows: list[Row], ctx: StageContext) -> tuple[list[str], list[Spans]]:
    """The stage's output texts (in row order) and, for pii, its findings per row."""
    df = frame(rows)
    result = normalize(df, NormalizeConfig(), ctx) if name == "normalize" else pii(df, PiiConfig(), ctx)
    out = dict(zip(result.kept["id"].to_list(), result.kept["text"].to_list(), strict=True))
    spans: dict[str, Spans] = {}
    if name == "pii":
        found = result.findings.filter(~pl.col("residual"))
        for rid, start, end, entity in found.select("id", "start", "end", "entity_type").iter_rows():
            spans.setdefault(rid, []).append((start, end, entity))
    ids = [f"r{i}" for i in range(len(rows))]
    return [out.get(i, "") for i in ids], [spans.get(i, []) for i in ids]


def python_source(row: Row, text: str) -> str | None:
    """The Python inside ``text`` where ``row`` is a Python answer: the whole text when bare, else the fence."""
    if row.python is None:
        return None
    if row.category.endswith("_bare"):
        return text
    m = _FENCE.search(text)
    return m.group(1) if m else text


def parses(src: str | None) -> bool:
    if src is None:
        return False
    try:
        ast.parse(src)
    except SyntaxError:
        return False
    return True


def fidelity(rows: list[Row], out: list[str]) -> dict[str, Any]:
    """Rows rewritten, by category too, and Python answers still parsing."""
    changed = [a.text != b for a, b in zip(rows, out, strict=True)]
    by_cat: dict[str, list[bool]] = {}
    for row, c in zip(rows, changed, strict=True):
        by_cat.setdefault(row.category, []).append(c)
    before = [i for i, r in enumerate(rows) if parses(r.python)]
    after = [i for i in before if parses(python_source(rows[i], out[i]))]
    code = [i for i, r in enumerate(rows) if "_bare" in r.category or "_fenced" in r.category]
    return {
        "indentation_changed": sum(_indents(rows[i].text) != _indents(out[i]) for i in code),
        "code_rows": len(code),
        "rewritten": sum(changed) / max(1, len(rows)),
        "by_category": {k: sum(v) / len(v) for k, v in sorted(by_cat.items())},
        "python_before": len(before),
        "python_after": len(after),
    }


def _indents(text: str) -> list[str]:
    """The leading whitespace of every non-blank line: what code indentation is made of."""
    return [line[: len(line) - len(line.lstrip())] for line in text.splitlines() if line.strip()]


def precision(rows: list[Row], out: list[str], spans: list[Spans]) -> dict[str, Any]:
    """Findings that overlap a planted value, share of all findings; planted values gone."""
    real = total = gone = planted = 0
    false_by_entity: Counter[str] = Counter()
    for row, text, found in zip(rows, out, spans, strict=True):
        for s, e, entity in found:
            total += 1
            if any(s < ge and gs < e for _, gs, ge in row.gold):
                real += 1
            else:
                false_by_entity[entity] += 1
        for _, gs, ge in row.gold:
            planted += 1
            gone += re.search(r"(?<!\w)" + re.escape(row.text[gs:ge]) + r"(?!\w)", text) is None
    return {
        "precision": real / max(1, total),
        "findings": total,
        "recall": gone / max(1, planted),
        "false": dict(false_by_entity.most_common()),
    }


def top_false(rows: list[Row], spans: list[Spans], k: int = 8) -> list[tuple[str, str, int]]:
    """The most frequent findings on clean rows, masked: (entity, masked value, count)."""
    seen: Counter[tuple[str, str]] = Counter()
    for row, found in zip(rows, spans, strict=True):
        for s, e, entity in found:
            seen[entity, mask_value(row.text[s:e], entity)] += 1
    return [(entity, masked, n) for (entity, masked), n in seen.most_common(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="clean rows (the mixed set has half as many)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    clean, mixed = make_clean(args.n, seed=args.seed), make_mixed(args.n // 2, seed=args.seed + 100)
    print(f"clean rows: {len(clean)} ({sum(r.python is not None for r in clean)} Python answers); mixed rows: {len(mixed)}")
    print(f"categories: {dict(Counter(r.category for r in clean).most_common())}")

    offline_presidio()
    ctx = StageContext(kind="text")
    analyzer, anonymizer = presidio_defaults()
    results: dict[str, dict[str, Any]] = {}
    norm_out, _ = run_stage("normalize", clean, ctx)
    results["normalize"] = fidelity(clean, norm_out)
    pii_out, pii_spans = run_stage("pii", clean, ctx)
    results["pii"] = fidelity(clean, pii_out)
    base_out, base_spans = run_presidio([r.text for r in clean], analyzer, anonymizer)
    results["presidio defaults"] = fidelity(clean, base_out)
    print_fidelity(results)

    mixed_ours = run_stage("pii", mixed, ctx)
    mixed_base = run_presidio([r.text for r in mixed], analyzer, anonymizer)
    print_precision(precision(mixed, *mixed_ours), precision(mixed, *mixed_base))
    print("\n## Most frequent findings on clean rows (masked)\n")
    for side, spans in (("ours", pii_spans), ("presidio", base_spans)):
        print(f"{side:9}: " + (", ".join(f"{e} {m!r} x{n}" for e, m, n in top_false(clean, spans)) or "none"))


def print_fidelity(results: dict[str, dict[str, Any]]) -> None:
    print("\n## Clean rows (no personal data): rows rewritten and Python answers still parsing\n")
    print(f"| {'stage':18} | {'rows rewritten':>14} | {'python parsing after / before':>29} | {'share':>6} |")
    print(f"|{'-' * 20}|{'-' * 15}:|{'-' * 30}:|{'-' * 7}:|")
    for name, r in results.items():
        share = r["python_after"] / max(1, r["python_before"])
        print(f"| {name:18} | {r['rewritten']:14.3f} | {r['python_after']:>14} / {r['python_before']:<12} | {share:6.3f} |")
    ours = results["pii"]
    verdict = "ok" if ours["rewritten"] <= REWRITE_TARGET else "MISS"
    print(f"\ntarget: pii rewrites <= {REWRITE_TARGET:.0%} of clean rows -> {verdict}")
    norm = results["normalize"]
    share = norm["python_after"] / max(1, norm["python_before"])
    print(f"target: normalize leaves >= {PARSE_TARGET:.1%} of Python answers parsing -> {'ok' if share >= PARSE_TARGET else 'MISS'}")
    moved = norm["indentation_changed"]
    print(
        f"target: normalize changes no code indentation -> {moved} of {norm['code_rows']} code rows changed ({'ok' if moved == 0 else 'MISS'})"
    )
    print("\nrows rewritten by category:")
    cats = list(ours["by_category"])
    print("| stage | " + " | ".join(cats) + " |")
    print("|---|" + "---:|" * len(cats))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(f"{r['by_category'][c]:.2f}" for c in cats) + " |")


def print_precision(ours: dict[str, Any], base: dict[str, Any]) -> None:
    print("\n## Mixed rows (planted personal data): PII precision and recall\n")
    print(f"| {'detector':18} | {'findings':>8} | {'precision':>9} | {'recall':>6} | false findings by entity |")
    print(f"|{'-' * 20}|{'-' * 9}:|{'-' * 10}:|{'-' * 7}:|---|")
    for name, r in (("ours (pii stage)", ours), ("presidio defaults", base)):
        false = ", ".join(f"{k} {v}" for k, v in r["false"].items()) or "-"
        print(f"| {name:18} | {r['findings']:8d} | {r['precision']:9.3f} | {r['recall']:6.3f} | {false} |")
    print(f"\ntarget: precision >= {PRECISION_TARGET} -> {'ok' if ours['precision'] >= PRECISION_TARGET else 'MISS'}")


if __name__ == "__main__":
    main()
