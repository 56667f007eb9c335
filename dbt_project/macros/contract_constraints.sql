{#-
  The column rules of the tables with an enforced contract are DuckDB constraints (docs/marts.md).
  DuckDB checks an appended row against the constraints the table was created with, and cannot add a
  CHECK constraint to an existing table. So an incremental table whose constraints in the warehouse are
  not the ones its YAML declares (a warehouse built before a constraint was added or removed) is rebuilt
  from scratch once, as on --full-refresh; the next builds are incremental again. The comparison is by
  constraint type and column: changing the expression of an existing check needs --full-refresh.

  This overrides dbt's should_full_refresh (global project, materializations/configs.sql), which
  is_incremental() and the incremental materialization ask; it adds one catalogue query per call.
-#}

{% macro should_full_refresh() %}
  {% set config_full_refresh = config.get('full_refresh') %}
  {% if config_full_refresh is none %}
    {% set config_full_refresh = flags.FULL_REFRESH %}
  {% endif %}
  {% if not config_full_refresh and execute and model.resource_type == 'model'
        and model.config.materialized == 'incremental' and model.config.contract.enforced %}
    {% set config_full_refresh = not constraints_in_place(this) %}
  {% endif %}
  {% do return(config_full_refresh) %}
{% endmacro %}

{% macro constraints_in_place(relation) %}
  {#- True when the table has exactly the not_null and check constraints the model declares (or is missing). -#}
  {% if adapter.get_relation(relation.database, relation.schema, relation.identifier) is none %}
    {{ return(true) }}
  {% endif %}
  {% set declared = [] %}
  {% for column in model.columns.values() %}
    {% for c in column.constraints %}
      {% if c.type in ('not_null', 'check') %}
        {% do declared.append(('NOT NULL' if c.type == 'not_null' else 'CHECK') ~ ' ' ~ column.name) %}
      {% endif %}
    {% endfor %}
  {% endfor %}
  {% set rows = run_query(
      "select constraint_type || ' ' || constraint_column_names[1] from duckdb_constraints() "
      ~ "where database_name = '" ~ relation.database ~ "' and schema_name = '" ~ relation.schema
      ~ "' and table_name = '" ~ relation.identifier ~ "' and constraint_type in ('NOT NULL', 'CHECK')"
  ).rows %}
  {% set existing = [] %}
  {% for row in rows %}
    {% do existing.append(row[0]) %}
  {% endfor %}
  {% if (existing | sort) != (declared | sort) %}
    {% if not model.get('_constraints_rebuild_logged') %}
      {% do model.update({'_constraints_rebuild_logged': true}) %}
      {{ log("Constraints of " ~ relation ~ " differ from its contract: rebuilding it from scratch", info=True) }}
    {% endif %}
    {{ return(false) }}
  {% endif %}
  {{ return(true) }}
{% endmacro %}
