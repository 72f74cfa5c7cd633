"""Backbone registry: ``emolr`` (the Emotion Predictor, default), ``dialoguernn``, ``dialoguegcn``, ``dag-erc``."""

from mmemolr.model.backbones.base import (
    BACKBONES,
    Backbone,
    backbone_class,
    backbone_options,
    build_backbone,
    check_backbone_config,
    drop_removed_options,
    load_builtin_backbones,
    register_backbone,
)

__all__ = ["BACKBONES", "Backbone", "backbone_class", "backbone_options", "build_backbone",
           "check_backbone_config", "drop_removed_options",
           "load_builtin_backbones", "register_backbone"]
