{#- Generic data test for the analytics marts: every row must satisfy a SQL boolean expression
    (rows where it is null pass, as in value_between). -#}
{% test marts_rows_satisfy(model, expression) %}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
