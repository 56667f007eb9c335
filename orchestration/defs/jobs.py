"""The names of the registry's Dagster jobs and of a run's landing watermark tag, in one place: the
definitions, the assets, the sensors, the build use case and the warm builder all refer to them (``definitions`` imports the sensors, so the names
cannot live there)."""

#: ingest, dbt, publish: ``registry build``, the warm builder and the landing sensor run it
BUILD_JOB = "registry_build"
#: every dbt data test over every row (daily schedule, ``registry build --data-tests``)
DATA_TESTS_JOB = "registry_data_tests"
#: the newest landing batch a build run covers (set by whoever starts the run)
WATERMARK_TAG = "registry/landing_watermark"
