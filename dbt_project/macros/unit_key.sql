{#- SQL twin of orchestration.contract.reference.unit_key: units match ignoring case, white space
    and the micro signs u/µ/μ (and × is read as x). tests/test_contract_reference.py keeps the two equal. -#}
{% macro unit_key(expr) -%}
lower(replace(replace(replace(regexp_replace({{ expr }}, '[ \t\n\r\f\v]+', '', 'g'), 'µ', 'u'), 'μ', 'u'), '×', 'x'))
{%- endmacro %}
