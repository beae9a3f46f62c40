"""Where a stage runs: in this process (``local``, the reference) or on Apache Spark.

The runner keeps the books, fingerprints and run directory; an engine only decides how
``stage(df, options, ctx)`` is executed. The Spark engine lives in ``curation.spark`` and
is imported only when a run asks for it, so the default install needs no JVM or PySpark.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import polars as pl

from curation.core.errors import ConfigError
from curation.core.registry import stage_function
from curation.core.stage import StageContext, StageResult

EngineName = Literal["local", "spark"]
SPARK_EXTRA = "pip install 'tuneprep[spark]'"


class Engine(Protocol):
    name: str

    def run_stage(self, name: str, df: pl.DataFrame, options: Any, ctx: StageContext) -> StageResult: ...

    def close(self) -> None: ...


class LocalEngine:
    """Every stage in this process, over polars: the reference the other engines must equal."""

    name = "local"

    def run_stage(self, name: str, df: pl.DataFrame, options: Any, ctx: StageContext) -> StageResult:
        return stage_function(name)(df, options, ctx)  # type: ignore[no-any-return]

    def close(self) -> None:
        return None


def engine_for(name: EngineName, *, spark_master: str | None = None, spark_remote: str | None = None) -> Engine:
    """The engine a run asked for (``run.engine`` or ``--engine``).

    Raises:
        ConfigError: ``spark`` without PySpark installed, or Spark options with the local engine.
    """
    if name == "local":
        if spark_master or spark_remote:
            raise ConfigError("`--spark-master` and `--spark-remote` need `--engine spark` (or `run.engine: spark` in the config)")
        return LocalEngine()
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(f"`engine: spark` needs PySpark, which is not installed: {SPARK_EXTRA} (and Java 17)") from None
    from curation.spark.engine import SparkEngine

    return SparkEngine.connect(master=spark_master, remote=spark_remote)
