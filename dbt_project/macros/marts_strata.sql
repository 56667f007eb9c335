{#- The strata of mart_mortality and mart_survival. Python twin: orchestration/analytics/stats.py (STRATA,
    stratum_values); tests/test_marts.py keeps the two equal. -#}

{% macro marts_default_strata() -%}
{{ return(['all', 'kidney_status', 'sex', 'age_band', 'visceral_involvement', 'lesion_distribution', 'warfarin']) }}
{%- endmacro %}

{#- How each stratum is spelled: text strata keep the dim_cases value ('unknown' when null); yes/no
    strata are 'true' / 'false' / 'unknown'. -#}
{% macro marts_stratum_expression(stratum) -%}
{%- set exprs = {
    'all': "'all'",
    'kidney_status': "coalesce(kidney_status, 'unknown')",
    'sex': "coalesce(sex, 'unknown')",
    'age_band': "coalesce(age_band, 'unknown')",
    'visceral_involvement': "case when visceral_involvement then 'true' when not visceral_involvement then 'false' else 'unknown' end",
    'lesion_distribution': "coalesce(lesion_distribution, 'unknown')",
    'warfarin': "case when warfarin then 'true' when not warfarin then 'false' else 'unknown' end",
} -%}
{%- if stratum not in exprs -%}
{{ exceptions.raise_compiler_error("unknown mortality stratum '" ~ stratum ~ "'; known: " ~ (exprs.keys() | list | join(', '))) }}
{%- endif -%}
{{ exprs[stratum] }}
{%- endmacro %}

{#- One row per case and stratum: (stratum, stratum_value, case_id, died, followup_days). -#}
{% macro marts_case_strata(cases, strata) -%}
{%- for s in strata %}
select
    '{{ s }}'::varchar as stratum,
    ({{ marts_stratum_expression(s) }})::varchar as stratum_value,
    case_id,
    died,
    followup_days
from {{ cases }}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{%- endmacro %}
