"""Which float precision a training run uses on this hardware."""

from __future__ import annotations


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` where bf16 matmuls are native (CUDA with bf16, CPUs with AVX512-BF16/AMX), else ``fp32``."""
    import torch

    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return "bf16" if check is not None and check() else "fp32"
    except RuntimeError:
        return "fp32"
