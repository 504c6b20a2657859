"""Images as the network sees them: preprocessing (and its inverse), folders loaded into memory, grouped
train/validation splits and k folds, augmentation (symmetries, fainter and resized views), torch datasets."""

from astroae_core.data.augmentation import augment
from astroae_core.data.config import PreprocessConfig
from astroae_core.data.folder import LoadedImages, load_folder
from astroae_core.data.folds import kfold_by_group
from astroae_core.data.normalization import Norm
from astroae_core.data.pixels import replace_nonfinite
from astroae_core.data.preprocessing import preprocess
from astroae_core.data.resize import resize_image
from astroae_core.data.splits import group_keys, split_by_group
from astroae_core.data.torch_dataset import ImageTensorDataset
from astroae_core.data.training_views import training_views

__all__ = ["ImageTensorDataset", "LoadedImages", "Norm", "PreprocessConfig", "augment", "group_keys",
           "kfold_by_group", "load_folder", "preprocess", "replace_nonfinite", "resize_image", "split_by_group",
           "training_views"]
