"""Trained models shipped with fastem (package data: ``*.pt`` model files and their ``*.md`` cards).

Read them through :func:`fastem.nn.default_model.default_model_path` (``importlib.resources``),
never by a path relative to the source tree.
"""
