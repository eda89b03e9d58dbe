"""Decomposition baselines an SAE should beat, fitted with scikit-learn on a sample of activations.

Each is a `LinearDictionary`: rows `directions` `[n, d]`, a centre, and an encoder, so the benchmark scores
baselines and SAEs with the same code (`encode`, `decode`, `directions`). Fitting runs on the host (scikit-learn);
encoding and decoding are numpy.

- `pca`: principal components (at most d).
- `fast_ica`: independent components; directions are the mixing matrix's columns (at most d, and at most the
  data's rank).
- `nmf`: non-negative matrix factorisation of the data shifted to be non-negative; codes by non-negative least
  squares (scikit-learn's `transform`). May be overcomplete.
- `spherical_kmeans`: k-means on unit-normalised data; directions are the centroids, and a sample's code is its
  projection on its nearest centroid (one active latent).
- `random_directions`: random unit rows; codes by least squares (dense).
- `neuron_basis`: the model's own neurons (`GroundTruth.neurons`), codes by least squares.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import numpy as np
from jaxtyping import Float


@dataclasses.dataclass(frozen=True)
class LinearDictionary:
    """x ≈ encode(x) @ directions + centre, with an arbitrary (host-side) encoder."""

    name: str
    directions: Float[np.ndarray, "n d"]
    centre: Float[np.ndarray, " d"]
    encoder: Callable[[np.ndarray], np.ndarray]

    def encode(self, x: Float[np.ndarray, "batch d"]) -> Float[np.ndarray, "batch n"]:
        return self.encoder(np.asarray(x, np.float64))

    def decode(self, z: Float[np.ndarray, "batch n"]) -> Float[np.ndarray, "batch d"]:
        return np.asarray(z) @ self.directions + self.centre


def _check(x, n_components: int, at_most_d: bool, name: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: data must be [n >= 2, d], got shape {x.shape}")
    if n_components < 1 or (at_most_d and n_components > x.shape[1]):
        raise ValueError(f"{name}: n_components must be in [1, {x.shape[1] if at_most_d else 'inf'}), got "
                         f"{n_components}")
    return x


def _least_squares(directions: np.ndarray, centre: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    pinv = np.linalg.pinv(directions)  # [d, n]
    return lambda x: (x - centre) @ pinv


def pca(x, n_components: int, seed: int = 0) -> LinearDictionary:
    from sklearn.decomposition import PCA  # each baseline imports scikit-learn when run: importing it takes ~2 s,
    # which every import of toymi.decompose paid, baselines used or not

    x = _check(x, n_components, True, "pca")
    model = PCA(n_components, random_state=seed).fit(x)
    return LinearDictionary("PCA", model.components_, model.mean_, lambda v: (v - model.mean_) @ model.components_.T)


def fast_ica(x, n_components: int, seed: int = 0) -> LinearDictionary:
    """At most as many components as the data's rank: whitening a rank-deficient direction (e.g. a dead neuron's
    constant activation) divides by a zero variance and leaves every component NaN."""
    from sklearn.decomposition import FastICA
    from sklearn.exceptions import ConvergenceWarning

    x = _check(x, n_components, True, "fast_ica")
    n_components = min(n_components, int(np.linalg.matrix_rank(x - x.mean(axis=0))))
    # scikit-learn's whitening divides by rank-deficient data's zero singular values; the rows kept are finite
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = FastICA(n_components, random_state=seed, max_iter=400, tol=1e-3, whiten="unit-variance").fit(x)
    return LinearDictionary("FastICA", model.mixing_.T, model.mean_, model.transform)


def nmf(x, n_components: int, seed: int = 0) -> LinearDictionary:
    from sklearn.decomposition import NMF
    from sklearn.exceptions import ConvergenceWarning

    x = _check(x, n_components, False, "nmf")[:2048]  # multiplicative-update cost grows with n · components
    shift = np.minimum(x.min(axis=0), 0.0)  # NMF needs non-negative data; shift only the coordinates that need it
    init = "nndsvda" if n_components <= min(x.shape) else "random"  # nndsvd cannot be overcomplete
    with warnings.catch_warnings():  # a fixed iteration budget: not converging fully is expected, not an error
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = NMF(n_components, init=init, random_state=seed, max_iter=50, tol=1e-3).fit(x - shift)

    def encode(v):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return model.transform(np.maximum(v - shift, 0.0))

    return LinearDictionary("NMF", model.components_, shift, encode)


def spherical_kmeans(x, n_components: int, seed: int = 0) -> LinearDictionary:
    from sklearn.cluster import KMeans

    x = _check(x, n_components, False, "spherical_kmeans")
    unit = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    model = KMeans(n_components, random_state=seed, n_init=1).fit(unit)
    centroids = model.cluster_centers_ / np.maximum(np.linalg.norm(model.cluster_centers_, axis=-1, keepdims=True),
                                                    1e-12)

    def encode(v):
        proj = v @ centroids.T  # [batch, n]
        best = np.abs(proj).argmax(axis=-1)
        z = np.zeros_like(proj)
        z[np.arange(len(v)), best] = proj[np.arange(len(v)), best]
        return z

    return LinearDictionary("spherical k-means", centroids, np.zeros(x.shape[1]), encode)


def random_directions(x, n_components: int, seed: int = 0) -> LinearDictionary:
    x = _check(x, n_components, False, "random_directions")
    v = np.random.default_rng(seed).normal(size=(n_components, x.shape[1]))
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    centre = x.mean(axis=0)
    return LinearDictionary("random", v, centre, _least_squares(v, centre))


def neuron_basis(x, neurons: Float[np.ndarray, "n_neurons d"]) -> LinearDictionary:
    neurons = np.asarray(neurons, np.float64)
    x = _check(x, len(neurons), False, "neuron_basis")
    return LinearDictionary("neuron basis", neurons, np.zeros(x.shape[1]), _least_squares(neurons, 0.0))


BASELINES: dict[str, Callable[..., LinearDictionary]] = {
    "PCA": pca, "FastICA": fast_ica, "NMF": nmf, "spherical k-means": spherical_kmeans, "random": random_directions,
}
