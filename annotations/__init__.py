"""Unified JSON annotations for action-recognition datasets (filled by the annotations issue)."""
