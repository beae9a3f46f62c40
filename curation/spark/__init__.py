"""The Apache Spark engine (``run.engine: spark``): the same stages, run on a Spark cluster.

Only the DataFrame subset that also works over Spark Connect is used (``mapInArrow``,
``groupBy/agg``, joins, ``posexplode``): no RDDs, no ``SparkContext``. Nothing here imports
PySpark at module import; ``curation.spark.engine.SparkEngine`` is made by
``curation.core.engines.engine_for``. See docs/spark.md.
"""
