"""The one place that imports Great Expectations and converts polars to pandas.

GX 1.x has no polars data source, so the derived frame goes through ``to_pandas`` here
and nowhere else. The context is ephemeral (nothing persists between calls) with a
Data Docs site pinned to a folder we choose, progress bars and analytics off. GX is
imported inside functions: it costs seconds and most commands never need it.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from checks.suites import Spec
from curation.core.errors import ConfigError
from curation.core.masking import mask_shape, mask_value

SITE = "tuneprep"
SAMPLE = 10  # offending ids (and values) kept per failed expectation
_EXTERNAL = re.compile(r"""<(link|script)\b[^>]*\b(?:href|src)\s*=\s*["']?https?://[^>]*>(?:\s*</script>)?""", re.I)
_INLINE_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.I | re.S)
_STATIC_REF = re.compile(r"""((?:href|src)\s*=\s*["'])(?:\.\./|\./)*static/""", re.I)
_REMOTE_IMG = re.compile(r"""(<img\b[^>]*\bsrc\s*=\s*["'])https?://[^"']*(["'])""", re.I)
_OFFLINE_CSS = """<style>/* tuneprep: GX Data Docs load Bootstrap from CDNs; this keeps them readable offline */
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top;text-align:left}
pre{white-space:pre-wrap;max-height:20rem;overflow:auto;background:#f6f6f6}.text-danger{color:#b00}.text-success{color:#070}
img{max-height:50px}.fixed-top,.sticky-top,nav{position:static!important}
.fa-check-circle::before{content:"\\2714 pass"}.fa-times::before{content:"\\2718 fail"}
.fa-exclamation-triangle::before{content:"\\26A0 "}</style>"""


@dataclass(frozen=True)
class RawResult:
    """What GX said about one expectation, keyed back to its spec by name."""

    success: bool
    result: dict[str, Any]
    exception: str | None  # the error message when the expectation raised instead of evaluating


def _import_gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # never phone home
    import great_expectations as gx

    return gx


def make_context(docs_dir: Path) -> Any:
    """An ephemeral GX context whose Data Docs site writes to ``docs_dir``."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults, ProgressBarsConfig

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(), progress_bars=ProgressBarsConfig(globally=False), analytics_enabled=False
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    site = {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs_dir).resolve())},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    context.add_data_docs_site(SITE, site)
    return context


def build_expectation(spec: Spec) -> Any:
    """The GX expectation object for ``spec``. Raises ConfigError for an unknown or mis-specified one."""
    gx = _import_gx()
    cls = getattr(gx.expectations, spec.expectation, None)
    if cls is None or not isinstance(cls, type):
        raise ConfigError(
            f"`checks.custom`: unknown expectation `{spec.expectation}`; use a class name from great_expectations.expectations, e.g. ExpectColumnValuesToMatchRegex"
        )
    severity = "critical" if spec.severity == "critical" else "warning"
    try:
        return cls(**spec.kwargs, severity=severity, meta={"tuneprep": spec.name}, description=spec.describe or None)
    except Exception as e:  # GX validates kwargs with pydantic: report the first problem on one line
        first = str(e).strip().splitlines()
        raise ConfigError(
            f"`checks` expectation `{spec.name}`: invalid arguments {spec.kwargs}: {first[-1] if first else type(e).__name__}"
        ) from None


def to_pandas(frame: pl.DataFrame) -> Any:
    """The frame GX validates, converted in this one place.

    A nested column (``messages``) goes over as its list length: its structure is checked
    through the derived ``_messages_issue``, and a million lists of structs as pandas
    objects would cost more than all the checks together.
    """
    return flat_frame(frame).to_pandas()


def flat_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns GX sees: a list column as its length, struct columns left out."""
    exprs = [
        pl.col(c).list.len().alias(c) if isinstance(t, pl.List | pl.Array) else pl.col(c)
        for c, t in frame.schema.items()
        if not isinstance(t, pl.Struct)
    ]
    return frame.select(exprs)


def _exception(info: dict[str, Any]) -> str | None:
    """GX reports an errored expectation as success=False with ``exception_info``, not by raising."""
    infos = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for item in infos:
        if item.get("raised_exception"):
            message = str(item.get("exception_message") or "unknown error").strip().splitlines()
            return message[-1] if message else "unknown error"
    return None


def name_rows(result: dict[str, Any], ids: pl.Series | None) -> None:
    """Replace GX's row positions in ``partial_unexpected_index_list`` by ``{"id": ...}``, in place."""
    positions = result.get("partial_unexpected_index_list")
    if ids is not None and positions and all(isinstance(p, int) for p in positions):
        result["partial_unexpected_index_list"] = [{"id": mask_value(ids[p])} for p in positions]


def plain(value: Any) -> Any:
    """numpy scalars (pandas' observed values) as Python numbers, so verdict.json writes ``1``, not ``"1"``."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


def _length(value: Any) -> Any:
    return f"<{len(value)} chars>" if isinstance(value, str) else value


def _shape(value: Any) -> Any:
    return mask_shape(value) if isinstance(value, str) else value


def scrub(result: dict[str, Any], column: str, *, free_text: bool = True) -> None:
    """Mask shown values in place: a free-text column's by their length, labels by their shape, any other's by ``mask_value``.

    Labels and ids count as data: nothing raw reaches the results, the ledger or Data Docs.
    """
    mask = _length if free_text else _shape if column == "label" else mask_value
    if "partial_unexpected_list" in result:
        result["partial_unexpected_list"] = [mask(v) for v in result["partial_unexpected_list"]]
    for item in result.get("partial_unexpected_counts", []):
        item["value"] = mask(item["value"])
    for item in result.get("partial_unexpected_index_list", []):
        if isinstance(item, dict) and column in item:
            item[column] = mask(item[column])
    result.pop("unexpected_list", None)


def validation_definition(context: Any, source: Any, suite_name: str, expectations: list[Any]) -> Any:
    """The suite of ``expectations`` on the whole dataframe of ``source`` (a pandas or Spark data source)."""
    gx = _import_gx()
    batch = source.add_dataframe_asset("curated").add_batch_definition_whole_dataframe("all_rows")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    return context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))


def validate(
    frame: pl.DataFrame, specs: list[Spec], *, docs_dir: Path, text_columns: list[str], suite_name: str, spark: Any = None
) -> tuple[dict[str, RawResult], dict[str, Any]]:
    """Validate ``frame`` against ``specs`` and build Data Docs into ``docs_dir``.

    With ``spark`` (a SparkSession), GX's Spark datasource evaluates the suite on Spark
    (``checks.spark_gx``); the results are the same as the pandas path's.

    Returns:
        The result of every spec by name, and the GX suite validation result as JSON.
    """
    if spark is not None:
        from checks.spark_gx import validate_on_spark

        return validate_on_spark(spark, frame, specs, docs_dir=docs_dir, text_columns=text_columns, suite_name=suite_name)
    expectations = [build_expectation(s) for s in specs]
    context = make_context(docs_dir)
    definition = validation_definition(context, context.data_sources.add_pandas("dataset"), suite_name, expectations)
    # Not `unexpected_index_column_names`: GX then looks up every unexpected row one by one
    # (minutes when most of a million rows fail); positions come back cheaply instead.
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE}
    validation = definition.run(batch_parameters={"dataframe": to_pandas(frame)}, result_format=result_format)
    ids = frame["id"] if "id" in frame.columns else None
    raw: dict[str, RawResult] = {}
    for r in validation.results:
        column = r.expectation_config.kwargs.get("column")
        name_rows(r.result, ids)
        scrub(r.result, column, free_text=column in text_columns)
        raw[r.expectation_config.meta["tuneprep"]] = RawResult(bool(r.success), plain(dict(r.result)), _exception(r.exception_info or {}))
    _store_and_build_docs(context, validation, docs_dir)
    return raw, validation.to_json_dict()


def _store_and_build_docs(context: Any, validation: Any, docs_dir: Path) -> None:
    """Re-store the scrubbed result (the run stored the raw one) and render offline Data Docs."""
    store = context.validation_results_store
    for key in store.list_keys():
        store.set(key, validation)
    context.build_data_docs(site_names=[SITE])
    make_offline(docs_dir)


def make_offline(docs_dir: Path) -> None:
    """Strip CDN stylesheets/scripts and remote images from every page; write a static index.

    GX pages pull Bootstrap, jQuery, Font Awesome and Vega from CDNs and fill the index
    table with JavaScript, so offline they show nothing. The validation and suite pages
    are rendered server-side and stay readable with a small inline stylesheet.
    """
    pages = sorted(p for p in docs_dir.rglob("*.html") if p.name != "index.html")
    for page in pages:
        static = os.path.relpath(docs_dir / "static", page.parent)
        text = page.read_text(encoding="utf-8")
        text = _INLINE_SCRIPT.sub("", _EXTERNAL.sub("", text))
        # GX gets the depth of validation pages wrong by one level for its own static files
        text = _STATIC_REF.sub(rf"\g<1>{static}/", text)
        text = _REMOTE_IMG.sub(rf"\g<1>{static}/images/logo-long.png\g<2>", text)
        page.write_text(text.replace("</head>", _OFFLINE_CSS + "</head>", 1), encoding="utf-8")
    links = "".join(
        f'<li><a href="{html.escape(p.relative_to(docs_dir).as_posix())}">{html.escape(p.relative_to(docs_dir).as_posix())}</a></li>'
        for p in pages
    )
    index = f"<!doctype html><html><head><meta charset='utf-8'><title>tuneprep checks: Data Docs</title>{_OFFLINE_CSS}</head><body><h1>Data Docs</h1><ul>{links}</ul></body></html>\n"
    (docs_dir / "index.html").write_text(index, encoding="utf-8")
