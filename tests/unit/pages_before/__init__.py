"""The dashboards' page queries as they were before issue 16's fourth session (main a964b5c),
frozen: ``tests/unit/test_page_queries_identical.py`` checks that today's ``dashboards.queries``
returns the same figures. One entry per case reached numpy here; the new functions count in DuckDB."""
