"""Where and in which arithmetic a run computes: the run keys `device` and `precision`.

It imports torch and the run config's ConfigError.
"""

from __future__ import annotations

import torch

from iqrl.config.run import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use device=cpu")
    return torch.device(name)


class UpdatePrecision:
    """The arithmetic of the gradient updates (run key `precision`), entered around each update.

    fp32 changes nothing. bf16 autocasts the updates' matrix products to bfloat16 (losses, FSQ codes and
    single-output heads stay float32). tf32 (CUDA only) lets the updates' float32 matrix products and
    convolutions run on TensorFloat-32 tensor cores: inputs rounded to a 10-bit mantissa, float32
    accumulation and storage; acting and evaluation keep full float32. Reusable: `with` it every update."""

    def __init__(self, precision: str, device: torch.device):
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
        self.tf32 = precision == "tf32"
        self._saved: tuple[str, str] | None = None

    def __enter__(self) -> None:
        if self.tf32:
            matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
            self._saved = (matmul.fp32_precision, conv.fp32_precision)
            matmul.fp32_precision = conv.fp32_precision = "tf32"
        self.autocast.__enter__()

    def __exit__(self, *exc) -> None:
        self.autocast.__exit__(*exc)
        if self._saved is not None:
            torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = self._saved
            self._saved = None
