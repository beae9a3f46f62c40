"""The stage contract: what every curation stage takes and returns.

A stage is a plain function ``stage(df, cfg, ctx) -> StageResult`` over a polars
DataFrame and its small frozen config. It keeps the books: every input row ends up in
exactly one of ``kept``, ``dropped`` (with a snake_case ``reason``) or ``quarantined``
(with an ``error``). Heavy engines come from ``ctx.engine`` so the runner builds them once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import polars as pl

from curation.core.progress import NullBar
from curation.core.schema import Kind

T = TypeVar("T")


@dataclass(frozen=True)
class StageResult:
    """What a stage returns.

    Attributes:
        kept: rows that go on to the next stage (same columns as the input, possibly
            rewritten or with columns added).
        dropped: removed rows, the input's columns plus ``reason`` (snake_case).
        findings: one row per observation (PII span, duplicate pair, label issue...);
            must never hold raw PII values.
        stats: JSON-serialisable counters and metrics for ``stats.json`` and the report.
        quarantined: rows the stage could not process: ``id`` and ``error`` at least.
        kind: the record kind of ``kept`` when the stage changes it (preference pairs).
            Such a stage also reports ``stats["rows_used"]``: input rows that went into
            at least one output row, so that rows_in = rows_used + dropped + quarantined.
        files: extra files for the stage directory, relative path -> content (e.g.
            ``{"charts/label.svg": "<svg ...>"}``), written atomically by the runner.
    """

    kept: pl.DataFrame
    dropped: pl.DataFrame
    findings: pl.DataFrame = field(default_factory=pl.DataFrame)
    stats: dict[str, Any] = field(default_factory=dict)
    quarantined: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame({"id": [], "error": []}, schema={"id": pl.String, "error": pl.String})
    )
    kind: Kind | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)


class Progress(Protocol):
    def advance(self, n: int = 1) -> None: ...


@dataclass
class StageContext:
    """What the runner hands every stage besides its data and config.

    Attributes:
        kind: the record kind of the input frame.
        run_dir: the run directory (stages read earlier stages' outputs through
            ``artifacts``, not by path, where they can).
        seed: the run's seed (``run.seed`` in the config).
        artifacts: earlier stages' results by stage name (``findings`` and ``stats``),
            e.g. label_audit reads ``artifacts["dedup"].findings`` for clusters.
        engines: cache of heavy objects shared across stages (see ``engine``).
        progress_factory: builds a progress bar; quiet runs get a no-op.
        config_dir: the config file's folder; relative paths in stage options resolve here.
        runs_root: the folder holding run directories (for ``against: RUN`` by run id).
    """

    kind: Kind
    run_dir: Path | None = None
    config_dir: Path = Path(".")
    runs_root: Path | None = None
    seed: int = 0
    artifacts: dict[str, StageResult] = field(default_factory=dict)
    engines: dict[str, Any] = field(default_factory=dict)
    progress_factory: Callable[[str, int | None], Any] | None = None

    def engine(self, key: str, build: Callable[[], T]) -> T:
        """Return the engine cached under ``key``, building it once with ``build``."""
        if key not in self.engines:
            self.engines[key] = build()
        return self.engines[key]  # type: ignore[no-any-return]

    @contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[Progress]:
        """A progress bar for long work: ``with ctx.progress("hashing", n) as bar: bar.advance(k)``."""
        if self.progress_factory is None:
            yield NullBar()
            return
        with self.progress_factory(description, total) as bar:
            yield bar


def empty_like(df: pl.DataFrame, **extra: pl.DataType) -> pl.DataFrame:
    """An empty frame with ``df``'s schema plus ``extra`` columns (e.g. ``reason=pl.String``)."""
    return pl.DataFrame(schema={**df.schema, **extra})


def with_reason(df: pl.DataFrame, reason: str | pl.Expr) -> pl.DataFrame:
    """``df`` plus a ``reason`` column, the shape of ``StageResult.dropped``."""
    expr = reason if isinstance(reason, pl.Expr) else pl.lit(reason)
    return df.with_columns(expr.cast(pl.String).alias("reason"))
