"""Duplicates and host diversity on a result page (placeholder, filled below)."""
