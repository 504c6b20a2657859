"""The embedded demo dataset: GalSim galaxy stamps with injected oddities, written as FITS with a catalog."""

from astroae_core.demo.generate import generate_demo_data
from astroae_core.demo.plan import ANOMALY_KINDS, KINDS, assign_kinds
from astroae_core.demo.stamp import CATALOG_COLUMNS

__all__ = ["ANOMALY_KINDS", "CATALOG_COLUMNS", "KINDS", "assign_kinds", "generate_demo_data"]
