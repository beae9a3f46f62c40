"""Inter-annotator agreement over a long frame of ratings: ``item, annotator, label``.

- Cohen's kappa per annotator pair, on the items both labelled:
  ``(p_o - p_e) / (1 - p_e)`` with ``p_e`` from each annotator's own label shares.
- Fleiss' kappa overall, in its usual form for a varying number of ratings per item:
  ``P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1))``, ``p_j`` = share of all ratings in
  ``j``, ``kappa = (mean P_i - sum p_j^2) / (1 - sum p_j^2)``.
- Krippendorff's alpha for nominal data from the coincidence matrix:
  ``alpha = 1 - (n - 1) (n - sum_c o_cc) / (n^2 - sum_c n_c^2)``, where ``o_cc`` counts
  agreeing pairable values within units (each unit weighted ``1 / (m_u - 1)``).
- Per-annotator disagreement rate: the share of (item, other annotator) comparisons
  where the two labels differ.

Only items with at least two ratings count. An annotator rating one item twice keeps
the first rating (input order). A statistic whose chance agreement is 1 (everyone
used one label) is undefined and returned as None.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from curation.core.masking import mask_value


def _ratings(long: pl.DataFrame) -> pl.DataFrame:
    """One rating per (item, annotator), on items rated at least twice."""
    rated = long.drop_nulls(["item", "annotator", "label"]).unique(["item", "annotator"], keep="first", maintain_order=True)
    return rated.filter(pl.len().over("item") >= 2)


def _pairs(rated: pl.DataFrame) -> pl.DataFrame:
    """Every ordered pair of different annotators on a shared item: item, a, b, la, lb."""
    left = rated.select("item", a="annotator", la="label")
    right = rated.select("item", b="annotator", lb="label")
    return left.join(right, on="item").filter(pl.col("a") != pl.col("b"))


def cohen_kappa_pairs(long: pl.DataFrame) -> pl.DataFrame:
    """Cohen's kappa per annotator pair (``a < b``): columns a, b, items, agreement, kappa."""
    pairs = _pairs(_ratings(long)).filter(pl.col("a") < pl.col("b"))
    observed = pairs.group_by("a", "b").agg(items=pl.len(), agreement=(pl.col("la") == pl.col("lb")).mean())
    share_a = pairs.group_by("a", "b", pl.col("la").alias("label")).agg(na=pl.len())
    share_b = pairs.group_by("a", "b", pl.col("lb").alias("label")).agg(nb=pl.len())
    chance = share_a.join(share_b, on=["a", "b", "label"]).group_by("a", "b").agg(pe_raw=(pl.col("na") * pl.col("nb")).sum())
    out = observed.join(chance, on=["a", "b"], how="left").with_columns(
        pe=pl.col("pe_raw").fill_null(0) / pl.col("items").cast(pl.Float64) ** 2
    )
    kappa = pl.when(pl.col("pe") < 1.0).then((pl.col("agreement") - pl.col("pe")) / (1.0 - pl.col("pe")))
    return out.select("a", "b", "items", "agreement", kappa.alias("kappa")).sort("a", "b")


def _item_counts(long: pl.DataFrame) -> pl.DataFrame:
    """Per (item, label): how many ratings; plus ``m`` = ratings of the item."""
    return _ratings(long).group_by("item", "label").agg(n=pl.len()).with_columns(m=pl.col("n").sum().over("item"))


def fleiss_kappa(long: pl.DataFrame) -> float | None:
    """Fleiss' kappa over items with two or more ratings; None when undefined."""
    counts = _item_counts(long)
    if counts.is_empty():
        return None
    per_item = counts.group_by("item").agg(sq=(pl.col("n") ** 2).sum(), m=pl.col("m").first())
    p_bar = per_item.select(((pl.col("sq") - pl.col("m")) / (pl.col("m") * (pl.col("m") - 1))).mean()).item()
    shares = counts.group_by("label").agg(n=pl.col("n").sum())
    p_e = shares.select(((pl.col("n") / pl.col("n").sum()) ** 2).sum()).item()
    return None if p_e >= 1.0 else float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha(long: pl.DataFrame) -> float | None:
    """Krippendorff's alpha (nominal) over pairable values; None when undefined."""
    counts = _item_counts(long)
    if counts.is_empty():
        return None
    o_diag = counts.select((pl.col("n") * (pl.col("n") - 1) / (pl.col("m") - 1)).sum()).item()
    n_c = counts.group_by("label").agg(n=pl.col("n").sum())["n"].cast(pl.Float64)
    n = float(n_c.sum())
    denominator = n * n - float((n_c**2).sum())
    return None if denominator <= 0 else float(1.0 - (n - 1.0) * (n - o_diag) / denominator)


def disagreement_rates(long: pl.DataFrame) -> pl.DataFrame:
    """Per annotator: shared items, comparisons with others, and the share that disagree."""
    pairs = _pairs(_ratings(long))
    rates = pairs.group_by("a").agg(
        items=pl.col("item").n_unique(), comparisons=pl.len(), disagreement=(pl.col("la") != pl.col("lb")).mean()
    )
    return rates.rename({"a": "annotator"}).sort("annotator")


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def annotator_agreement(long: pl.DataFrame, *, max_pairs: int = 100) -> dict[str, Any]:
    """All agreement statistics as JSON-ready data (annotator ids masked by ``curation.core.masking.mask_value``)."""
    rated = _ratings(long)
    pairs = cohen_kappa_pairs(long).sort("items", "a", "b", descending=[True, False, False])
    rates = disagreement_rates(long)
    return {
        "items_multi_rated": rated["item"].n_unique(),
        "annotators": long["annotator"].drop_nulls().n_unique(),
        "fleiss_kappa": _round(fleiss_kappa(long)),
        "krippendorff_alpha": _round(krippendorff_alpha(long)),
        "cohen_kappa": [
            {
                "a": mask_value(r["a"]),
                "b": mask_value(r["b"]),
                "items": r["items"],
                "agreement": _round(r["agreement"]),
                "kappa": _round(r["kappa"]),
            }
            for r in pairs.head(max_pairs).iter_rows(named=True)
        ],
        "cohen_kappa_pairs_total": pairs.height,
        "disagreement_rate": {mask_value(r["annotator"]): _round(r["disagreement"]) for r in rates.iter_rows(named=True)},
    }
