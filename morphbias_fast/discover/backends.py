"""PCA and logistic regression for discovery: cuML on the GPU when it imports, scikit-learn otherwise.

Both backends take and return NumPy float64 arrays, so the methods above them see one result type
whichever ran. Independent component analysis and the one-dimensional two-component mixture always run
in scikit-learn: cuML has neither, and both work on at most a few hundred columns (milliseconds)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from morphbias_fast.errors import MorphbiasError

BACKENDS = ("auto", "cuml", "sklearn")


def cuml_status() -> tuple[bool, str]:
    """(usable, reason). Any exception counts as unusable: a cuML wheel without a working CUDA driver
    raises RuntimeError or OSError at import, not only ImportError."""
    try:
        import cuml
        from cuml.decomposition import PCA  # noqa: F401
        from cuml.linear_model import LogisticRegression  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return False, f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
    return True, f"cuml {cuml.__version__}"


@dataclass(frozen=True)
class Backend:
    name: str  # "cuml" or "sklearn"

    def pca(self, X: np.ndarray, n_components, whiten: bool, seed: int) -> np.ndarray:
        """Scores of X on its principal components. n_components: an int, or a float in (0, 1) for the
        share of variance to keep."""
        X = np.asarray(X, dtype=np.float64)
        if isinstance(n_components, float):  # cuML takes only a count: pick it from the spectrum here
            s = np.linalg.svd(X - X.mean(0), compute_uv=False) ** 2
            n_components = int(np.searchsorted(np.cumsum(s) / s.sum(), n_components) + 1)
        n_components = int(min(n_components, X.shape[0], X.shape[1]))
        if self.name == "cuml":
            from cuml.decomposition import PCA
            out = PCA(n_components=n_components, whiten=whiten, output_type="numpy").fit_transform(X)
        else:
            from sklearn.decomposition import PCA
            out = PCA(n_components=n_components, whiten=whiten, random_state=seed).fit_transform(X)
        return np.asarray(out, dtype=np.float64)

    def logistic_scores(self, X: np.ndarray, y: np.ndarray, C: float, X_eval=None) -> np.ndarray:
        """Decision function (log-odds) of an L2 logistic regression fitted to (X, y), on X_eval (default X)."""
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y).astype(np.int64)
        X_eval = X if X_eval is None else np.asarray(X_eval, dtype=np.float64)
        if self.name == "cuml":
            from cuml.linear_model import LogisticRegression
            model = LogisticRegression(C=C, max_iter=3000, output_type="numpy").fit(X, y)
            return np.asarray(model.decision_function(X_eval), dtype=np.float64).ravel()
        from sklearn.linear_model import LogisticRegression
        return LogisticRegression(C=C, max_iter=3000).fit(X, y).decision_function(X_eval)


def get_backend(name: str = "auto") -> Backend:
    """`auto`: cuML when it imports, else scikit-learn. `cuml` fails with the reason when it does not."""
    if name not in BACKENDS:
        raise MorphbiasError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "sklearn":
        return Backend("sklearn")
    ok, why = cuml_status()
    if ok:
        return Backend("cuml")
    if name == "cuml":
        raise MorphbiasError(f"--backend cuml: cuML is not usable here ({why}); install it with "
                             f"`pip install .[gpu]` on a CUDA machine, or use --backend sklearn")
    return Backend("sklearn")
