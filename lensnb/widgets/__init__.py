"""Widgets: a shared base (``base.LensWidget``) and one module per widget; frontends in ``static/``."""
