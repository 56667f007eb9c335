"""Submission formats other than contract-v1 JSON: each converts its input into contract-v1 records."""
