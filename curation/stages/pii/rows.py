"""Row context the per-text pass of the `pii` stage cannot see.

The engine analyses each distinct text once, on its own. Two things only the row knows:

- a name found in one field or turn is a name in the row's other fields and turns too
  ("Sure Cornelius, ..." in the assistant's reply after the user signed "Cornelius
  Abernathy-Vane");
- a value of a column that names a person (``pii.person_columns``: ``annotator``, ``author``...)
  shaped like a personal name is one, though NER sees no context around it.

``row_context`` returns the cells whose findings grow, re-scrubbed (residual scan
included) by the engine; every other cell keeps the engine's per-text result.

``numbered_people`` then keeps person columns useful: where a whole value was replaced
(`replace` operator), each distinct value gets its own numbered placeholder
(``<PERSON_1>``, ``<EMAIL_ADDRESS_2>``), numbered by first appearance, so per-annotator
agreement and preference calibration still tell annotators apart, without a hash.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from typing import TYPE_CHECKING

from curation.stages.pii.recognizers import NAME_REPEAT_SCORE as SCORE
from curation.stages.pii.recognizers import Span, name_parts, resolve, whole_words

if TYPE_CHECKING:
    from curation.stages.pii.engine import PiiEngine, TextResult

Cell = tuple[int, str, str]  # (row index, field label, text)

_NAME_SHAPE = re.compile(r"[A-Z][A-Za-z'’.-]+(?: [A-Z][A-Za-z'’.-]*){1,3}")  # two to four capitalised words


def row_context(cells: list[Cell], results: dict[str, TextResult], engine: PiiEngine) -> dict[tuple[int, str], TextResult]:
    """Per (row, field label): the cell's result with the row's names added, where that adds findings."""
    if "PERSON" not in engine.entities or engine.cfg.operator_for("PERSON") == "keep" or engine.cfg.threshold_for("PERSON") > SCORE:
        return {}
    rows: dict[int, list[Cell]] = defaultdict(list)
    for cell in cells:
        rows[cell[0]].append(cell)
    grown: dict[tuple[int, str], list[Span]] = {}
    texts: dict[tuple[int, str], str] = {}
    for row_cells in rows.values():
        extra = {(i, f): _name_column_span(f, t, results[t].spans, engine) for i, f, t in row_cells}
        parts = {p for i, f, t in row_cells for p in name_parts(t, [*results[t].spans, *extra[i, f]])}
        if not parts or (len(row_cells) < 2 and not any(extra.values())):
            continue
        repeat = whole_words(parts)
        for i, f, t in row_cells:
            spans = [*results[t].spans, *extra[i, f]]
            added = extra[i, f] + [
                Span(m.start(), m.end(), "PERSON", SCORE, "NameInRow")
                for m in repeat.finditer(t)
                if not any(s.start <= m.start() < s.end for s in spans) and not engine.allowed(m.group())
            ]
            if added:
                grown[i, f], texts[i, f] = resolve([*results[t].spans, *added], t), t
    keys = list(grown)
    redone = engine.process([texts[k] for k in keys], spans=[grown[k] for k in keys]) if keys else []
    return dict(zip(keys, redone, strict=True))


def _name_column_span(field: str, text: str, spans: tuple[Span, ...], engine: PiiEngine) -> list[Span]:
    """The whole value of a person column, if it is shaped like a name and no finding covers it."""
    value = text.strip()
    if field not in engine.cfg.person_columns or not _NAME_SHAPE.fullmatch(value) or engine.allowed(value):
        return []
    start = text.index(value)
    if any(s.entity == "PERSON" and s.start <= start and start + len(value) <= s.end for s in spans):
        return []
    return [Span(start, start + len(value), "PERSON", SCORE, "NameColumn")]


def numbered_people(
    cells: list[Cell], results: dict[str, TextResult], in_rows: dict[tuple[int, str], TextResult], person_columns: list[str]
) -> dict[tuple[int, str], TextResult]:
    """Person-column cells whose whole value was replaced, with a placeholder numbered per distinct value."""
    numbers: dict[tuple[str, str], int] = {}
    per_entity: dict[str, int] = defaultdict(int)
    out: dict[tuple[int, str], TextResult] = {}
    for i, f, t in cells:
        res = in_rows.get((i, f)) or results[t]
        value = t.strip()
        if f not in person_columns or len(res.spans) != 1 or res.operators[0] != "replace":
            continue
        span = res.spans[0]
        if t[span.start : span.end] != value:
            continue
        key = (span.entity, value)
        if key not in numbers:
            per_entity[span.entity] += 1
            numbers[key] = per_entity[span.entity]
        out[i, f] = dataclasses.replace(res, scrubbed=f"{t[: span.start]}<{span.entity}_{numbers[key]}>{t[span.end :]}")
    return out
