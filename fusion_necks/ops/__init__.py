"""Pure-PyTorch building blocks on point tokens (no OpenMMLab imports)."""
from .gather import batched_index_select, flat_batch_index
from .inverse_distance import inverse_distance_interpolate, inverse_distance_weights
from .knn import knn
from .nbhd_attention import cluster_nbhd_attention, cluster_schedule, nbhd_attention
from .point_features import PointFeatures
from .points_to_dense import dense_grid_centres, points_to_dense
from .rel_pos_features import expanded_rel_pos, rel_pos_dim
from .space_filling_cluster import (Clustering, balanced_clusters, space_filling_cluster,
                                    space_filling_order)
from .weighted_aggregation import weighted_gather, weighted_neighbour_sum

__all__ = [
    'Clustering', 'PointFeatures', 'balanced_clusters', 'batched_index_select',
    'cluster_nbhd_attention', 'cluster_schedule', 'dense_grid_centres', 'expanded_rel_pos',
    'flat_batch_index', 'inverse_distance_interpolate', 'inverse_distance_weights', 'knn',
    'nbhd_attention', 'points_to_dense', 'rel_pos_dim', 'space_filling_cluster',
    'space_filling_order', 'weighted_gather', 'weighted_neighbour_sum'
]
