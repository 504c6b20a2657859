"""Images as the network sees them: preprocessing (and its inverse), folders loaded into memory, grouped
train/validation splits, augmentation, torch datasets."""

from astroae_core.data.dataset import (ImageTensorDataset, LoadedImages, augment, group_keys, load_folder,
                                       split_by_group)
from astroae_core.data.preprocessing import Norm, PreprocessConfig, preprocess, replace_nonfinite, resize_image

__all__ = ["ImageTensorDataset", "LoadedImages", "Norm", "PreprocessConfig", "augment", "group_keys",
           "load_folder", "preprocess", "replace_nonfinite", "resize_image", "split_by_group"]
