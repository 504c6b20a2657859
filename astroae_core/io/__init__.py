"""Files in and out: reading FITS images, finding them in a folder, the catalog beside them, atomic writes, and
the confinement of every read to the folders the user configured."""

from astroae_core.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text, fsync_path
from astroae_core.io.catalog import CATALOG_NAME, LINKED_FROM_OUTSIDE, catalog_column, join_catalog, read_catalog
from astroae_core.io.fits import (FITS_SUFFIXES, FitsReadError, check_read_args, find_fits_files, is_within, read_fits,
                                  read_fits_with_index)
from astroae_core.io.sky import sky_position

__all__ = ["CATALOG_NAME", "FITS_SUFFIXES", "LINKED_FROM_OUTSIDE", "FitsReadError", "check_read_args", "atomic_path",
           "atomic_write_bytes", "atomic_write_text", "catalog_column", "find_fits_files", "fsync_path",
           "is_within", "join_catalog", "read_catalog", "read_fits", "read_fits_with_index", "sky_position"]
