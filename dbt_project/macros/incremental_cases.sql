{#-
  Per-case incremental models. Ingestion lists in raw.pending_cases every case whose rows must be
  recomputed (a new revision, a withdrawal); the pipeline empties the list after a successful build.
  A per-case model deletes its rows of those cases (pre-hook) and appends them recomputed, so one new
  case does not rebuild a registry of a million. On a first or --full-refresh build, everything is built.
-#}

{% macro pending_cases_filter(column='case_id') -%}
{%- if is_incremental() -%}
{{ column }} in (select case_id from {{ source('raw', 'pending_cases') }})
{%- else -%}
true
{%- endif -%}
{%- endmacro %}

{% macro delete_pending_cases() -%}
{%- if is_incremental() -%}
delete from {{ this }} where case_id in (select case_id from {{ source('raw', 'pending_cases') }})
{%- else -%}
select 1
{%- endif -%}
{%- endmacro %}
