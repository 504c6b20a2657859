"""Files in and out: reading FITS images (with the guards that keep corrupt files from hanging or crashing the
reader), finding them in a folder, the catalog beside them, atomic writes, and the confinement of every read to the
folders the user configured."""

from astroae_core.io.atomic import (atomic_path, atomic_write_bytes, atomic_write_text, exchange_paths,
                                    folder_lock, fsync_path, new_folder_beside, replace_folder, tidy_beside)
from astroae_core.io.catalog import CATALOG_NAME, LINKED_FROM_OUTSIDE, catalog_column, join_catalog, read_catalog
from astroae_core.io.errors import FitsReadError
from astroae_core.io.fits_writer import reconstruction_fits_bytes
from astroae_core.io.paths import FITS_SUFFIXES, find_fits_files, is_within
from astroae_core.io.reader import check_read_args, read_fits, read_fits_with_index
from astroae_core.io.sky import sky_centre, sky_position

__all__ = ["CATALOG_NAME", "FITS_SUFFIXES", "FitsReadError", "LINKED_FROM_OUTSIDE", "atomic_path", "atomic_write_bytes",
           "atomic_write_text", "catalog_column", "check_read_args", "exchange_paths", "find_fits_files", "folder_lock",
           "fsync_path", "is_within", "join_catalog", "new_folder_beside", "read_catalog", "read_fits",
           "read_fits_with_index", "reconstruction_fits_bytes", "replace_folder", "sky_centre", "sky_position", "tidy_beside"]
