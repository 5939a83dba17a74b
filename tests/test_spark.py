# ruff: noqa: F811 - pytest fixtures imported from fleet_fixtures
"""PySpark (local mode) reads both layouts with the right types and prunes on site and date.

Few tests sharing one SparkSession (fleet_fixtures.spark), skipped without Java or PySpark.
"""

from __future__ import annotations

import pytest
from fleet_data import DAYS, ROWS_PER_SITE_DAY, SITES, make_layouts
from fleet_fixtures import spark  # noqa: F401 - fixture


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    return make_layouts(tmp_path_factory.mktemp("spark"))


def test_spark_reads_both_layouts_with_types_counts_and_pruning(spark, layouts):  # noqa: F811
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    for root, layout in zip(layouts, ("home", "fleet"), strict=True):
        df = spark.read.parquet(str(root / "values"))
        fields = {f.name: f.dataType for f in df.schema.fields}
        assert isinstance(fields["time"], T.TimestampType), layout  # a UTC instant
        assert isinstance(fields["site"], T.StringType), layout
        assert isinstance(fields["date"], T.DateType), layout  # partition column
        assert isinstance(fields["value"], T.FloatType), layout
        assert df.count() == len(SITES) * len(DAYS) * ROWS_PER_SITE_DAY, layout

        # a day of all sites: the date partition prunes the other days' folders
        day = df.filter(F.col("date") == F.lit(str(DAYS[1])))
        plan = day._jdf.queryExecution().executedPlan().toString()
        assert "PartitionFilters: [isnotnull(date" in plan, (layout, plan)
        files = day.select(F.input_file_name()).distinct().collect()
        assert all(f"date={DAYS[1]}" in r[0] for r in files), layout
        assert day.count() == len(SITES) * ROWS_PER_SITE_DAY, layout

        # a month of one site: a partition filter (home) or a pushed-down filter on the
        # sorted site column whose row-group statistics skip the other sites (fleet)
        one = df.filter((F.col("site") == "beta") & (F.col("date") >= "2024-06-01"))
        plan = one._jdf.queryExecution().executedPlan().toString()
        if layout == "home":
            assert "PartitionFilters" in plan and "(site#" in plan.split("PartitionFilters")[1]
        else:
            assert "PushedFilters: [IsNotNull(site), EqualTo(site,beta)" in plan, plan
        assert one.count() == len(DAYS) * ROWS_PER_SITE_DAY, layout
        first = one.orderBy("time").first()
        assert first["time"].isoformat().startswith("2024-06-10T00:00"), layout
