"""Importers of feature files made by other toolkits into a prepared corpus plus HDF5 feature files."""

from mmemolr.importers.dialoguernn import LAYOUTS, ImportResult, detect_layout, import_dialoguernn

# --format NAME -> import function; adding a format is adding one module and one line here.
IMPORTERS = {"dialoguernn": import_dialoguernn}

__all__ = ["IMPORTERS", "LAYOUTS", "ImportResult", "detect_layout", "import_dialoguernn"]
