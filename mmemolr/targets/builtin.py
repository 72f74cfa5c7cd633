"""The built-in targets; adding one is adding a module beside these and listing it here."""

from mmemolr.targets import lcm, ls, onehot, rld, votes  # noqa: F401
