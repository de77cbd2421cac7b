"""Refresh: a challenger trained on new labels, a gate against the champion, promotion by MLflow alias."""
