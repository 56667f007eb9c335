{#- A message about a rejected record as published: every quoted value in it that is not a plain
    code (lower-case letters, digits, '_': a vocabulary code such as "dialysis") becomes "…", so that
    text a submitter typed (a name in the wrong field, a unit, an unknown field's name) is not published.
    tests/unit/test_published_quality.py runs this expression in DuckDB. -#}
{% macro mask_submitted_values(expr) -%}
(regexp_split_to_array({{ expr }}, '"(?:[^"\\]|\\.)*"')[1] || array_to_string(list_transform(range(1, len(regexp_extract_all({{ expr }}, '"(?:[^"\\]|\\.)*"')) + 1), lambda i: (case when regexp_full_match(regexp_extract_all({{ expr }}, '"(?:[^"\\]|\\.)*"')[i], '"[a-z0-9_]*"') then regexp_extract_all({{ expr }}, '"(?:[^"\\]|\\.)*"')[i] else '"…"' end) || regexp_split_to_array({{ expr }}, '"(?:[^"\\]|\\.)*"')[i + 1]), ''))
{%- endmacro %}
