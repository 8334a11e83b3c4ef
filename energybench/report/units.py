"""Engineering notation with units for display (report, terminal, plan): 3.27 GFLOP, 57.3 k params.

Display only: values inside the package stay in SI base units; this module formats them at the
edges. It must not round values that are stored or exported.
"""

from __future__ import annotations

import math
from typing import Any

#: SI prefixes by power of 1000 (engineering notation: exponents that are multiples of 3).
PREFIXES = {-4: "p", -3: "n", -2: "µ", -1: "m", 0: "", 1: "k", 2: "M", 3: "G", 4: "T", 5: "P"}

MISSING = "–"


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def eng(value: Any, unit: str = "", digits: int = 3) -> str:
    """``value`` in engineering notation with ``digits`` significant digits and ``unit``.

    ``eng(3273523200, "FLOP")`` -> ``"3.27 GFLOP"``; ``eng(0.0123, "J")`` -> ``"12.3 mJ"``;
    ``eng(57344)`` -> ``"57.3 k"``. Missing values give "–"; infinities "∞".
    """
    if _missing(value):
        return MISSING
    v = float(value)
    if math.isinf(v):
        return ("-∞" if v < 0 else "∞") + (f" {unit}" if unit else "")
    if v == 0:
        return f"0 {unit}".strip()
    exp3 = math.floor(math.log10(abs(v)) / 3)
    exp3 = max(min(exp3, max(PREFIXES)), min(PREFIXES))
    scaled = v / 1000.0**exp3
    # rounding may carry into the next prefix (999.7 -> "1e+03"): move up one
    if float(f"{abs(scaled):.{digits}g}") >= 1000 and exp3 < max(PREFIXES):
        exp3 += 1
        scaled = v / 1000.0**exp3
    text = f"{scaled:.{digits}g}"
    if "e" in text:  # beyond the prefix table
        text = f"{scaled:.{digits - 1}e}"
    prefix = PREFIXES[exp3]
    sep = " " if unit or prefix else ""
    return f"{text}{sep}{prefix}{unit}"


def bytes_text(n: Any) -> str:
    """A size in bytes with a binary-free SI prefix: ``eng(n, "B")`` (1 kB = 1000 B)."""
    return eng(n, "B")


def greenness_unit(quality: str, tau: float) -> str:
    """The unit of G = Q^τ / E and of the score S: ``psnr_db/J`` (τ = 1), ``ssim^2/J``."""
    return f"{quality}/J" if tau == 1 else f"{quality}^{tau:g}/J"
