"""The embedded demo dataset: GalSim galaxy stamps with injected oddities, written as FITS with a catalog."""

from astroae_core.demo.generate import ANOMALY_KINDS, CATALOG_COLUMNS, KINDS, assign_kinds, generate_demo_data

__all__ = ["ANOMALY_KINDS", "CATALOG_COLUMNS", "KINDS", "assign_kinds", "generate_demo_data"]
