"""Integration tests: boucle running real third-party software (see USAGE.md)."""
