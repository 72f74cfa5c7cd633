"""Imports every built-in backbone module, so that each registers itself."""

from mmemolr.model.backbones import dag_erc, dialoguegcn, dialoguernn, emolr  # noqa: F401
