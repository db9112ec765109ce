"""Widgets: a shared base (``base.LensWidget``), one module per widget, JS/CSS in ``static/``."""
