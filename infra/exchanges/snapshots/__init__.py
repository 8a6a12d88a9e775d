"""Saved exchange market definitions (data files only)."""
