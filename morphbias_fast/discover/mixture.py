"""Domino-style error-aware Gaussian mixture with diagonal covariances, in torch (CPU or GPU).

Each point is [features (e.g. PCA(latents, 4)), label, predicted probability]. The log-likelihood of a
component is a diagonal Gaussian on the features and the probability plus a Bernoulli on the label (as
Domino does: a Gaussian on a 0/1 column collapses onto one value and makes every component label-pure), with
the label and probability terms weighted (`y_weight`, `p_weight`) so that components form where the
classifier's errors concentrate. EM from a k-means++ start (or, with init="confusion", from responsibilities
that put each point in the components of its confusion-matrix cell: its label times its predicted
probability of each class, tiled over the K components, with a little noise); several restarts keep the
highest likelihood. The paper gives neither the weights nor the start; 10 and k-means++ are our defaults and
1 / confusion the published neighbours (METHOD.md section 3, bench/RESULTS.md)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

INITS = ("kmeans", "confusion")


# A field list with defaults; `duplicates` pairs it by shape with the other config dataclasses
# (gridconfig, synth, classify.train, discover.mixture): alike in form only, nothing to share.
@dataclass
class ErrorAwareGMM:
    n_components: int = 7
    y_weight: float = 10.0
    p_weight: float = 10.0
    n_init: int = 5
    init: str = "kmeans"            # INITS
    confusion_noise: float = 1e-3   # with init="confusion": uniform noise added to the start's responsibilities
    max_iter: int = 200
    tol: float = 1e-5
    reg_covar: float = 1e-4
    seed: int = 0
    device: str = "cpu"

    def _column_weights(self, d: int) -> torch.Tensor:
        w = torch.ones(d, dtype=torch.float64)
        w[-1] = self.p_weight
        return w

    def _log_prob(self, X, y, means, var, p_y, log_pi, w):
        # [N, K]: log pi_k + sum_d w_d log N(x_d | mu_kd, var_kd) + y_weight log Bern(y | p_k)
        diff2 = (X[:, None, :] - means[None]) ** 2
        ll = -0.5 * (diff2 / var[None] + torch.log(2 * math.pi * var)[None])
        bern = y[:, None] * torch.log(p_y)[None] + (1 - y[:, None]) * torch.log1p(-p_y)[None]
        return log_pi[None] + (ll * w).sum(-1) + self.y_weight * bern

    def _kmeanspp(self, X, gen):
        n = X.shape[0]
        centers = [X[torch.randint(n, (1,), generator=gen).item()]]
        for _ in range(1, self.n_components):
            d2 = torch.stack([((X - c) ** 2).sum(1) for c in centers]).min(0).values
            probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / n)
            centers.append(X[torch.multinomial(probs.cpu().float(), 1, generator=gen).item()])
        return torch.stack(centers)

    def _confusion_resp(self, y, prob, gen):
        """[N, K] start: point i in the cells (y_i, c) of the 2x2 confusion matrix with weight P(class c), cell
        j going to components j, j + 4, ... (K >= 4), plus noise so that tiled components can part."""
        if self.n_components < 4:
            raise ValueError(f"init='confusion' needs at least 4 components (the 2x2 cells), got {self.n_components}")
        p = prob[:, None]
        cells = torch.cat([(1 - y)[:, None] * torch.cat([1 - p, p], 1), y[:, None] * torch.cat([1 - p, p], 1)], 1)
        resp = cells[:, torch.arange(self.n_components) % 4]
        resp = resp / resp.sum(1, keepdim=True).clamp_min(1e-12)
        noise = torch.rand(resp.shape, generator=gen, dtype=resp.dtype).to(resp.device) * self.confusion_noise
        resp = resp + noise
        return resp / resp.sum(1, keepdim=True)

    def _m_step(self, X, y, resp):
        nk = resp.sum(0) + 1e-10
        means = resp.T @ X / nk[:, None]
        var = (resp.T @ (X ** 2) / nk[:, None] - means ** 2 + self.reg_covar).clamp_min(self.reg_covar)
        p_y = ((resp.T @ y) / nk).clamp(1e-4, 1 - 1e-4)
        return means, var, p_y, torch.log(nk / nk.sum())

    def fit_predict(self, features, y, prob):
        """Hard subgroup labels [N] (int) of the best restart; also sets means_, var_, weights_, resp_."""
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        y = torch.as_tensor(np.array(y, dtype=np.float64), device=self.device)
        prob = torch.as_tensor(np.array(prob, dtype=np.float64), device=self.device)
        X = torch.cat([torch.as_tensor(np.array(features, dtype=np.float64)).reshape(len(y), -1).to(self.device),
                       prob[:, None]], 1)
        if X.shape[0] < self.n_components:
            raise ValueError(f"{X.shape[0]} points cannot form {self.n_components} subgroups")
        mu, sd = X.mean(0), X.std(0).clamp_min(1e-12)
        X = (X - mu) / sd  # standardised columns: the weights, not the units, set each column's say
        w = self._column_weights(X.shape[1]).to(X.device)
        best = None
        for r in range(self.n_init):
            gen = torch.Generator().manual_seed(self.seed * 1000 + r)
            if self.init == "confusion":
                means, var, p_y, log_pi = self._m_step(X, y, self._confusion_resp(y, prob, gen))
            else:
                means = self._kmeanspp(X, gen)
                var = X.var(0)[None].repeat(self.n_components, 1) + self.reg_covar
                p_y = torch.full((self.n_components,), float(y.mean().clamp(0.01, 0.99)), dtype=X.dtype,
                                 device=X.device)
                log_pi = torch.full((self.n_components,), -math.log(self.n_components), dtype=X.dtype,
                                    device=X.device)
            prev = -math.inf
            for _ in range(self.max_iter):
                lp = self._log_prob(X, y, means, var, p_y, log_pi, w)
                total = torch.logsumexp(lp, 1)
                resp = torch.exp(lp - total[:, None])
                ll = total.mean().item()
                means, var, p_y, log_pi = self._m_step(X, y, resp)
                if abs(ll - prev) < self.tol * max(1.0, abs(ll)):
                    break
                prev = ll
            if best is None or ll > best[0]:
                best = (ll, means, var, log_pi, resp)
        self.log_likelihood_, self.means_, self.var_, log_pi, self.resp_ = best
        self.weights_ = torch.exp(log_pi)
        return self.resp_.argmax(1).cpu().numpy()
