"""What the latents and reconstructions say: image metrics, PCA and mean-image baselines, evaluation, latent
influence, PCA/UMAP maps and neighbours, outlier scores; one image (or an upload) through a model, latent
traversals, and the plain-number summaries the app shows."""

from astroae_core.analysis.baselines import MeanImageBaseline, PCABaseline
from astroae_core.analysis.correlations import latent_correlations
from astroae_core.analysis.evaluate import (beats_pca, compare_with_baselines, error_by_kind, evaluate, ratio_by_group,
                                            verdict)
from astroae_core.analysis.inference import image_spread, measure_influence, participation_ratio, run_model
from astroae_core.analysis.metrics import METRICS, image_metrics, summarize
from astroae_core.analysis.outliers import anomaly_scores, knn_distance, robust_z
from astroae_core.analysis.projections import (MIN_UMAP_POINTS, fit_pca, fit_umap, nearest_neighbors,
                                               pca_transform, place_by_neighbors, umap_transform)
from astroae_core.analysis.reconstruction import Reconstruction, decode_latents, reconstruct
from astroae_core.analysis.summary import (FAR_FROM_TRAINING, WEAK_INFLUENCE, carry_summary, distance_from_training,
                                           influence_summary, latent_influence, top_outliers, tracked_columns,
                                           worst_images)
from astroae_core.analysis.training_set import (SPLITS, TrainingSet, no_training_images, object_groups,
                                                training_images)
from astroae_core.analysis.traversal import interpolate_latents, traversal_latents
from astroae_core.analysis.upload import UPLOAD_SUFFIXES, UploadResult, process_upload, read_upload

__all__ = ["beats_pca", "FAR_FROM_TRAINING", "distance_from_training", "SPLITS", "TrainingSet", "no_training_images", "object_groups", "verdict", "METRICS", "MIN_UMAP_POINTS", "MeanImageBaseline", "PCABaseline", "Reconstruction", "UPLOAD_SUFFIXES",
           "UploadResult", "WEAK_INFLUENCE", "anomaly_scores", "carry_summary", "compare_with_baselines",
           "decode_latents", "error_by_kind", "evaluate", "fit_pca", "fit_umap", "image_metrics",
           "image_spread", "influence_summary", "interpolate_latents", "knn_distance", "latent_correlations",
           "latent_influence", "measure_influence", "nearest_neighbors", "participation_ratio", "pca_transform",
           "place_by_neighbors", "process_upload", "ratio_by_group", "read_upload", "reconstruct", "robust_z",
           "run_model", "summarize", "top_outliers", "tracked_columns", "training_images", "traversal_latents",
           "umap_transform", "worst_images"]
