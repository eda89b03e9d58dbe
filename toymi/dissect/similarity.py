"""Comparing representations: PCA of one, linear CKA between two (across layers, checkpoints or models).

Both take activations flattened to `[example, feature]`: pick the site and positions first, e.g.
`acts["resid_post"][:, layer, -1]` for the last position of a batch, or `resid.reshape(-1, d_model)` for every
position.

Linear CKA (Kornblith et al. 2019) compares two representations of the same examples through their example-by-example
similarity structure, so it does not care about rotations of feature space or about overall scale, and works between
representations of different widths: CKA(X, Y) = ||Yᶜᵀ Xᶜ||²_F / (||Xᶜᵀ Xᶜ||_F ||Yᶜᵀ Yᶜ||_F), with columns centred.
The feature-space form used here costs `n · d²` rather than `n²`, which suits toy models (many examples, narrow).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def pca(
    x: Float[Array, "example feature"], n_components: int = 2
) -> tuple[Float[Array, "example component"], Float[Array, "component feature"], Float[Array, " component"]]:
    """Principal components of `x` (centred), by SVD.

    **Arguments:**

    - `x`: `[example, feature]` activations.
    - `n_components`: how many leading components to keep (at most `min(example, feature)`).

    **Returns:** `(projected, components, explained)`: the centred examples in the component basis
    `[example, component]`, the unit component vectors `[component, feature]`, and the fraction of the total variance
    each explains `[component]`. Component signs are fixed so each component's largest loading is positive, so the
    same data always gives the same picture.
    """
    x = _check_matrix(x, "x")
    if not 1 <= n_components <= min(x.shape):
        raise ValueError(f"n_components must be in [1, {min(x.shape)}] for x of shape {x.shape}, got {n_components}")
    centred = x - x.mean(0)
    _, singular, vt = jnp.linalg.svd(centred, full_matrices=False)
    vt = vt[:n_components]
    sign = jnp.sign(jnp.take_along_axis(vt, jnp.abs(vt).argmax(-1, keepdims=True), axis=-1))
    vt = vt * jnp.where(sign == 0, 1.0, sign)
    variance = singular**2
    return centred @ vt.T, vt, variance[:n_components] / variance.sum()


def linear_cka(x: Float[Array, "example feature_x"], y: Float[Array, "example feature_y"]) -> Float[Array, ""]:
    """Linear centred kernel alignment between two representations of the same examples, in [0, 1].

    1 means the two are the same up to a rotation (orthogonal transform) and an overall scale; it is invariant to
    both, and to adding a constant vector, but not to arbitrary invertible linear maps.

    **Arguments:**

    - `x`, `y`: `[example, feature]` activations of the same examples, in the same order (widths may differ).

    **Returns:** a scalar.
    """
    x, y = _check_matrix(x, "x"), _check_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must describe the same examples: got {x.shape[0]} and {y.shape[0]} rows")
    x, y = x - x.mean(0), y - y.mean(0)
    cross = jnp.sum((y.T @ x) ** 2)
    return cross / (jnp.linalg.norm(x.T @ x) * jnp.linalg.norm(y.T @ y))


def cka_matrix(
    xs: Float[Array, "a example feature_x"], ys: Float[Array, "b example feature_y"] | None = None
) -> Float[Array, "a b"]:
    """Linear CKA between every pair of stacked representations, one vmapped computation.

    E.g. `xs = resid[:, :, -1].swapaxes(0, 1)` (`[layer, example, d_model]`) gives the layer-by-layer similarity
    of the residual stream; stacking one layer's activations over a checkpoint series compares training steps.

    **Arguments:**

    - `xs`: `[a, example, feature_x]`.
    - `ys`: `[b, example, feature_y]`; None compares `xs` with itself.

    **Returns:** `[a, b]`.
    """
    ys = xs if ys is None else ys
    if xs.ndim != 3 or ys.ndim != 3:
        raise ValueError(f"xs and ys must be [stack, example, feature], got shapes {xs.shape} and {ys.shape}")
    return jax.vmap(lambda x: jax.vmap(lambda y: linear_cka(x, y))(ys))(xs)


def _check_matrix(x, name: str) -> Array:
    x = jnp.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [example, feature]; got shape {x.shape} (flatten positions or batch first)")
    return x
