"""Training losses as plain functions, each with its formula and source."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def class_weights(counts: np.ndarray) -> np.ndarray:
    """Inverse-frequency class weights w_c = n / (K · n_c), which average 1 over the examples.

    Classes absent from training (n_c = 0) get weight 0.

    >>> class_weights(np.array([30, 10])).tolist()
    [0.6666666666666666, 2.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy −Σ_i w_{y_i} log p(y_i|x_i) / Σ_i w_{y_i} (plain mean when ``weight`` is None)."""
    return F.cross_entropy(logits.float(), target, weight=None if weight is None else weight.float())


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Focal loss −Σ_i w_{y_i} (1 − p_i)^γ log p_i / Σ_i w_{y_i}, with p_i = p(y_i|x_i).

    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017: the factor (1 − p)^γ turns down
    the loss of examples already classified well, so training dwells on the hard (often minority
    class) ones; BSC-UPC used γ = 2 in their Odyssey 2024 DMHA system. ``weight`` holds optional
    class weights w_c (e.g. :func:`class_weights`), normalised as in :func:`weighted_cross_entropy`,
    so that γ = 0 gives exactly the (weighted) cross-entropy.
    """
    if gamma < 0:
        raise ValueError(f"focal loss: gamma must not be negative, got {gamma}")
    log_p = torch.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
    loss = -((1 - log_p.exp()).clamp(min=0) ** gamma) * log_p if gamma else -log_p
    if weight is None:
        return loss.mean()
    w = weight.float()[target]
    return (w * loss).sum() / w.sum()


def ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Concordance correlation coefficient per column, from batch statistics (population moments).

    CCC = 2 cov(x, y) / (var x + var y + (mean x − mean y)²) (Lin, Biometrics 45(1), 1989).
    """
    pred, target = pred.float(), target.float()
    mp, mt = pred.mean(0), target.mean(0)
    vp, vt = pred.var(0, unbiased=False), target.var(0, unbiased=False)
    cov = ((pred - mp) * (target - mt)).mean(0)
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + 1e-8)


def neg_mean_ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """−mean CCC over the attribute columns (the TalTech attribute loss); −1 for a perfect prediction."""
    return -ccc(pred, target).mean()


def soft_kl_divergence(
    logits: torch.Tensor, soft_target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """KL divergence KL(y ‖ p) = Σ_k y_k (log y_k − log p_k) from soft labels ``y`` (B, K) to the
    model's softmax ``p``, averaged over the batch (0·log 0 = 0).

    The recognition loss of label-adaptive mixup (Kang, Zhang & Jiang, "Learning robust
    self-attention features for speech emotion recognition with label-adaptive mixup", ICASSP
    2023), whose mixed utterances carry two-class soft labels. It differs from the soft-label
    cross-entropy −Σ_k y_k log p_k only by the label entropy, a constant, so on one-hot labels it
    *is* cross-entropy. With class ``weight`` w each row counts w_i = Σ_k y_k w_k and the mean is
    Σ_i w_i KL_i / Σ_i w_i, which on one-hot labels is :func:`weighted_cross_entropy`.
    """
    logits, soft_target = logits.float(), soft_target.float()
    log_p = torch.log_softmax(logits, dim=1)
    log_y = torch.log(soft_target.clamp(min=torch.finfo(soft_target.dtype).tiny))
    per_row = (soft_target * (log_y - log_p)).sum(dim=1)
    if weight is None:
        return per_row.mean()
    row_weight = soft_target @ weight.float()
    return (row_weight * per_row).sum() / row_weight.sum().clamp(min=1e-12)


#: How centre loss treats a soft (mixed) label: distance to the label-weighted mix of the centres,
#: or the label-weighted sum of the distances to each centre.
CENTRE_MODES = ("mix", "sum")


def centre_loss(
    features: torch.Tensor, centres: torch.Tensor, soft_target: torch.Tensor, mode: str = "mix"
) -> torch.Tensor:
    """Centre loss (Wen, Zhang, Li & Qiao, "A discriminative feature learning approach for deep
    face recognition", ECCV 2016) for soft labels, averaged over the batch.

    Wen et al.: L_C = ½ Σ_i ‖x_i − c_{y_i}‖² with one learned centre c_k per class. Kang et al.
    (ICASSP 2023) fit it to mixup, whose utterance i is a mix with label weights y_i (two non-zero
    entries). ``mode="mix"`` (the default): the target of a mixed feature is the same mix of the
    two centres, ½ ‖x_i − Σ_k y_ik c_k‖², so a mix of two utterances should lie where the mix of
    their classes' centres lies (the linear behaviour mixup asks of the classifier, asked of the
    feature space). ``mode="sum"``: the label-weighted sum of the distances, ½ Σ_k y_ik ‖x_i − c_k‖²,
    which equals the "mix" form plus ½ Σ_k y_ik ‖c_k − c̄_i‖² (a pull of the two centres towards each
    other). Both are Wen et al.'s loss on one-hot labels. Here the batch mean is taken instead of
    the sum, so that the weight of the loss does not depend on the batch size.
    """
    features, centres, soft_target = features.float(), centres.float(), soft_target.float()
    if mode == "mix":
        return 0.5 * (features - soft_target @ centres).pow(2).sum(dim=1).mean()
    if mode == "sum":
        distances = torch.cdist(features, centres).pow(2)  # (B, K)
        return 0.5 * (soft_target * distances).sum(dim=1).mean()
    raise ValueError(f"centre loss mode must be one of {', '.join(CENTRE_MODES)}, got {mode!r}")


class CentreLoss(torch.nn.Module):
    """The learned class centres c_k (K, D) of :func:`centre_loss`, trained by the same optimiser as
    the model (Wen et al. update them with their own rate α; a gradient step on the loss is that
    update with α set by the optimiser). Centres start at small random values."""

    def __init__(self, n_classes: int, dim: int, mode: str = "mix") -> None:
        super().__init__()
        if mode not in CENTRE_MODES:
            raise ValueError(f"centre loss mode must be one of {', '.join(CENTRE_MODES)}, got {mode!r}")
        self.mode = mode
        self.centres = torch.nn.Parameter(0.01 * torch.randn(n_classes, dim))

    def forward(self, features: torch.Tensor, soft_target: torch.Tensor) -> torch.Tensor:
        return centre_loss(features, self.centres, soft_target, self.mode)
