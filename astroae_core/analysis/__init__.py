"""What the latents and reconstructions say: image metrics, PCA and mean-image baselines, evaluation, latent
influence, PCA/UMAP maps and neighbours, outlier scores."""

from astroae_core.analysis.baselines import MeanImageBaseline, PCABaseline
from astroae_core.analysis.evaluate import compare_with_baselines, error_by_kind, evaluate, ratio_by_group
from astroae_core.analysis.inference import (dimension_influence, image_spread, measure_influence,
                                             participation_ratio, run_model)
from astroae_core.analysis.metrics import METRICS, image_metrics, summarize
from astroae_core.analysis.outliers import anomaly_scores, knn_distance, robust_z
from astroae_core.analysis.projections import (MIN_UMAP_POINTS, fit_pca, fit_umap, nearest_neighbors,
                                               pca_transform, umap_transform)

__all__ = ["METRICS", "MIN_UMAP_POINTS", "MeanImageBaseline", "PCABaseline", "anomaly_scores",
           "compare_with_baselines", "dimension_influence", "error_by_kind", "evaluate", "fit_pca", "fit_umap",
           "image_metrics", "image_spread", "knn_distance", "measure_influence", "nearest_neighbors",
           "participation_ratio", "pca_transform", "ratio_by_group", "robust_z", "run_model", "summarize",
           "umap_transform"]
