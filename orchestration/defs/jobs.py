"""The names of the registry's Dagster jobs, in one place: the definitions, the sensors, the build
use case and the warm builder all refer to them (``definitions`` imports the sensors, so the names
cannot live there)."""

#: ingest, dbt, publish: ``registry build``, the warm builder and the landing sensor run it
BUILD_JOB = "registry_build"
#: every dbt data test over every row (daily schedule, ``registry build --data-tests``)
DATA_TESTS_JOB = "registry_data_tests"
