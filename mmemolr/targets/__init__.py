"""Training targets registry (onehot, rld, ls, lcm, votes); adding a target is adding one module."""

from mmemolr.targets.base import TARGETS, Target, build_target, load_builtin_targets, register_target

__all__ = ["TARGETS", "Target", "build_target", "load_builtin_targets", "register_target"]
