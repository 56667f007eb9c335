"""The one error of the analyses (no third-party import, so a command line can catch it cheaply)."""


class AnalysisError(ValueError):
    """The analysis cannot be computed for this cohort / choice (a one-line reason)."""
