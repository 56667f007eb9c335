{#-
  The data tests of an ordinary build look at the rows of the cases that build changed, not at a
  million cases again (issue 16): a per-case table (var per_case_models) is tested through
  "select * from <table> where case_id in (cases changed after build N)" when the pipeline passes
  the var tests_changed_after = N (orchestration/warehouse/tested.py says when that is safe). A
  test over such rows finds every fault they can have: a duplicate key shares its case_id, a row's
  parent in dim_cases is looked up for each tested row, and the other tests are about single rows.
  Everything else (marts, quality tables, seeds), and every table on a --full-refresh build, on the
  daily full run (Dagster job registry_data_tests) or without the var, is tested whole.

  This replaces dbt's get_where_subquery, through which every generic test reads its model (the
  same macro honours a test's own `where` config, kept here).
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where') -%}
    {%- set since = var('tests_changed_after', none) -%}
    {%- if since is not none and relation.identifier in var('per_case_models') -%}
        {%- set changes = api.Relation.create(database=relation.database, schema='raw', identifier='case_changes') -%}
        {%- set cases = 'case_id in (select case_id from ' ~ changes ~ ' where seq > ' ~ (since | int) ~ ')' -%}
        {%- set where = '(' ~ where ~ ') and ' ~ cases if where else cases -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
