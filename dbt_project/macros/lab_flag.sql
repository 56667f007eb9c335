{#- A lab value against its reference range: 'low', 'high', 'normal', or null when the range has no
    limit. One rule for fct_lab_results.flag (int_labs_normalized) and mart_lab_distributions, which
    flags the distinct values of mart_lab_value_counts. -#}
{% macro lab_flag(value, ref_low, ref_high) -%}
    case
        when {{ ref_low }} is null and {{ ref_high }} is null then null
        when {{ value }} < {{ ref_low }} then 'low'
        when {{ value }} > {{ ref_high }} then 'high'
        else 'normal'
    end
{%- endmacro %}
