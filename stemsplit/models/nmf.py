"""Supervised NMF baseline: one non-negative dictionary per stem, no neural network, no gradient.

Shape letters: B batch, C channels, F frequency bins, T frames, N frames pooled over batch and
channels, S stems, K dictionary atoms per stem.

Training (``trained_by = "fit"``, run by ``training/fit.py``): for each batch and stem, that
stem's magnitude frames V (F, N) are approximated as W H with the stem's dictionary W (F, K)
fixed and the activations H fitted by multiplicative updates (MU); then one MU step moves W
towards the batch, and W's columns are scaled back to unit sum (the scale moves into H).
Over many batches the dictionaries settle: mini-batch MU on the beta-divergence.

Separation: a segment's mixture frames are approximated by all stems' dictionaries at once,
[W_1 ... W_S] H, with the dictionaries fixed and H fitted by MU. Stem s's soft mask is
(W_s H_s)^p / sum_k (W_k H_k)^p: p = 2 is the Wiener-like mask, p = 1 the ratio mask.

The MU core (``fit_activations``, ``update_dictionary``, ``beta_divergence``) takes an array
module ``xp`` and runs the same code on torch tensors or numpy arrays; ``model.backend``
chooses which one the model uses.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from stemsplit.errors import ConfigError
from stemsplit.models.base import SeparationModel
from stemsplit.models.registry import register

EPS = 1e-9
BACKENDS = {"torch": torch, "numpy": np}


# --- the multiplicative-update core: torch or numpy --------------------------------------------


def _lam_powers(lam: Any, beta: float) -> tuple[Any, Any]:
    """(Lambda^(beta-2), Lambda^(beta-1)); the common betas without a general power."""
    if beta == 1.0:
        return 1.0 / lam, None  # Lambda^0: the denominators reduce to sums of W or H
    if beta == 2.0:
        return None, lam
    return lam ** (beta - 2.0), lam ** (beta - 1.0)


def fit_activations(xp: Any, V: Any, W: Any, H: Any, n_iter: int, beta: float = 1.0,
                    sparsity: float = 0.0) -> Any:
    """``n_iter`` MU updates of H for V ~ W H: V (..., F, N), W (F, K), H (..., K, N) -> H.

    H <- H * (W^T (V Lambda^(beta-2))) / (W^T Lambda^(beta-1) + sparsity), Lambda = W H.
    """
    Wt = W.T
    ones_den = Wt.sum(axis=1, keepdims=True) if beta == 1.0 else None  # W^T 1: (K, 1)
    for _ in range(n_iter):
        lam = W @ H + EPS
        low, high = _lam_powers(lam, beta)
        num = Wt @ (V * low if low is not None else V)
        den = (ones_den if high is None else Wt @ high) + sparsity + EPS
        H = H * (num / den)
    return H


def update_dictionary(xp: Any, V: Any, W: Any, H: Any, beta: float = 1.0) -> Any:
    """One MU step of W for V ~ W H (V (F, N), H (K, N)); columns rescaled to unit sum."""
    lam = W @ H + EPS
    low, high = _lam_powers(lam, beta)
    Ht = H.T
    num = (V * low if low is not None else V) @ Ht
    den = (H.sum(axis=1, keepdims=True).T if high is None else high @ Ht) + EPS
    W = W * (num / den)
    return W / (W.sum(axis=0, keepdims=True) + EPS)


def beta_divergence(xp: Any, V: Any, lam: Any, beta: float) -> float:
    """Mean beta-divergence per element between V and its approximation ``lam``."""
    lam = lam + EPS
    if beta == 1.0:
        d = V * xp.log((V + EPS) / lam) - V + lam
    elif beta == 0.0:
        ratio = (V + EPS) / lam
        d = ratio - xp.log(ratio) - 1.0
    else:
        d = (V ** beta + (beta - 1.0) * lam ** beta - beta * V * lam ** (beta - 1.0)) / (beta * (beta - 1.0))
    return float(d.mean())


def initial_activations(xp: Any, V: Any, atoms: int) -> Any:
    """(..., atoms, N): each frame's total level shared evenly by the atoms. The dictionaries'
    columns sum to one, so W H starts with every frame's level right; deterministic, so the
    torch and numpy backends start from the same point."""
    level = V.sum(axis=-2, keepdims=True) / atoms + EPS                # (..., 1, N)
    return xp.broadcast_to(level, (*V.shape[:-2], atoms, V.shape[-1])) * 1.0


# --- the model -----------------------------------------------------------------------------------


@dataclass
class NMFParams:
    """Dictionary size, divergence and the iteration counts of fitting and separation."""

    components: int = 32  # dictionary atoms per stem
    beta: float = 1.0  # beta-divergence: 1 Kullback-Leibler, 2 Euclidean, 0 Itakura-Saito
    fit_iterations: int = 10  # MU updates of a batch's activations before each dictionary step
    separate_iterations: int = 40  # MU updates of the activations per segment at separation
    sparsity: float = 0.0  # L1 penalty on the activations
    mask_power: float = 2.0  # 2: Wiener-like soft masks; 1: ratio masks
    backend: str = "torch"  # torch | numpy: where the multiplicative updates run


@register("nmf")
class SupervisedNMF(SeparationModel):
    """Magnitude (B, C, F, T) -> soft masks (B, S, C, F, T); dictionaries fitted, not trained."""

    params_class = NMFParams
    input_kind, output_kind, target, default_loss = "magnitude", "masks", "magnitude", "mse"
    trained_by = "fit"

    @classmethod
    def check_params(cls, params: NMFParams, *, n_bins: int, n_channels: int, n_stems: int) -> None:
        if params.components < 1:
            raise ConfigError(f"model.components: must be >= 1, got {params.components}")
        if not 0.0 <= params.beta <= 2.0:
            raise ConfigError(f"model.beta: {params.beta} must be in [0, 2] (0 IS, 1 KL, 2 Euclidean)")
        if params.fit_iterations < 1 or params.separate_iterations < 1:
            raise ConfigError("model.fit_iterations and model.separate_iterations: must be >= 1")
        if params.sparsity < 0 or params.mask_power <= 0:
            raise ConfigError("model.sparsity must be >= 0 and model.mask_power > 0")
        if params.backend not in BACKENDS:
            raise ConfigError(f"model.backend: {params.backend!r} is not one of: {', '.join(BACKENDS)}")

    def __init__(self, params: NMFParams, *, n_bins: int, n_channels: int, n_stems: int):
        super().__init__(params, n_bins=n_bins, n_channels=n_channels, n_stems=n_stems)
        self.k = params.components
        # the learnt dictionaries: parameters (so that they are counted and saved) without gradients
        init = torch.rand(n_stems, n_bins, self.k) + 0.1
        self.dictionaries = nn.Parameter(init / init.sum(dim=1, keepdim=True), requires_grad=False)
        # 0 until the first fit_step: then each dictionary starts from that batch's own frames
        self.register_buffer("fitted_batches", torch.zeros((), dtype=torch.long))

    def context_frames(self) -> int:
        return 0  # every frame is fitted on its own

    def export_module(self) -> nn.Module:
        """The torch-backend twin (same dictionaries): the numpy backend cannot be traced."""
        if self.params.backend == "torch":
            return self
        twin = SupervisedNMF(dataclasses.replace(self.params, backend="torch"), n_bins=self.n_bins,
                             n_channels=self.n_channels, n_stems=self.n_stems)
        twin.load_state_dict(self.state_dict())
        return twin.eval()

    # --- fitting --------------------------------------------------------------------------

    @torch.no_grad()
    def fit_step(self, mix_mag: torch.Tensor, src_mag: torch.Tensor) -> float:
        """One mini-batch MU step of every stem's dictionary; returns the mean divergence."""
        p = self.params
        xp = BACKENDS[p.backend]
        losses = []
        for s in range(self.n_stems):
            V = src_mag[:, s].permute(2, 0, 1, 3).reshape(self.n_bins, -1)  # (F, N)
            V = V[:, V.sum(0) > 1e-6 * V.sum(0).max().clamp_min(EPS)]       # silent frames teach nothing
            if V.shape[1] == 0:
                continue
            W = self.dictionaries[s]
            if self.fitted_batches.item() == 0:
                W = self._initial_dictionary(V)
            Vx, Wx = self._to(xp, V), self._to(xp, W)
            H = fit_activations(xp, Vx, Wx, initial_activations(xp, Vx, self.k), p.fit_iterations, p.beta,
                                p.sparsity)
            losses.append(beta_divergence(xp, Vx, Wx @ H, p.beta))  # the batch's fit before the step
            Wx = update_dictionary(xp, Vx, Wx, H, p.beta)
            self.dictionaries[s].copy_(self._from(Wx))
        self.fitted_batches += 1
        return float(np.mean(losses)) if losses else 0.0

    def _initial_dictionary(self, V: torch.Tensor) -> torch.Tensor:
        """(F, K) from K random frames of the stem (examples are a better start than noise)."""
        picks = torch.randint(V.shape[1], (self.k,), device=V.device)
        W = V[:, picks] + 1e-3 * V.mean() + EPS
        return W / W.sum(dim=0, keepdim=True)

    # --- separation -----------------------------------------------------------------------

    def _to(self, xp: Any, x: torch.Tensor) -> Any:
        return x.detach().cpu().numpy() if xp is np else x

    def _from(self, x: Any, like: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(x, np.ndarray):
            like = like if like is not None else self.dictionaries
            return torch.from_numpy(x).to(like.device, like.dtype)
        return x

    @torch.no_grad()
    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) magnitude -> (B, S, C, F, T) soft masks in [0, 1]."""
        p = self.params
        xp = BACKENDS[p.backend]
        b, c, f, t = mag.shape
        V = self._to(xp, mag.reshape(b * c, f, t))
        W = self._to(xp, self.dictionaries.permute(1, 0, 2).reshape(f, self.n_stems * self.k))  # (F, S*K)
        H = fit_activations(xp, V, W, initial_activations(xp, V, self.n_stems * self.k), p.separate_iterations,
                            p.beta, p.sparsity)
        parts = [W[:, s * self.k:(s + 1) * self.k] @ H[:, s * self.k:(s + 1) * self.k] for s in range(self.n_stems)]
        powered = [part ** p.mask_power for part in parts]
        total = sum(powered) + EPS
        masks = xp.stack([part / total for part in powered], axis=1) if xp is np else \
            torch.stack([part / total for part in powered], dim=1)      # (B*C, S, F, T)
        masks = self._from(masks, mag)
        return masks.reshape(b, c, self.n_stems, f, t).transpose(1, 2)
