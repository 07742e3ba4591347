"""Student's t distribution for whole degrees of freedom: the CDF and its inverse.

The index's confidence interval needs ``t(0.975, n − 1)`` with ``n`` counting points, so the
degrees of freedom are always whole numbers, and scipy is not a dependency. For whole ``ν`` the
t distribution has a closed form (Abramowitz & Stegun 26.7.3–4): with ``θ = atan(t / √ν)``,
``P(|T| < t)`` is a finite trigonometric series in ``cos² θ``. The quantile inverts that series
by bisection, which converges for every ``ν`` and every ``p`` in (0, 1).
"""

from __future__ import annotations

import math

_BISECTION_STEPS = 200


def _two_sided(t: float, df: int) -> float:
    """``P(|T| < t)`` for ``t ≥ 0`` and whole ``df ≥ 1``."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        # Odd ν: (2/π)·(θ + sin θ cos θ·(1 + 2/3 cos² θ + (2·4)/(3·5) cos⁴ θ + …)), ν − 3 at most.
        series, term = 0.0, 1.0
        if df > 1:
            series = 1.0
            for k in range(1, (df - 3) // 2 + 1):
                term *= c2 * (2 * k) / (2 * k + 1)
                series += term
        return 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * series)
    # Even ν: sin θ·(1 + 1/2 cos² θ + (1·3)/(2·4) cos⁴ θ + …), up to cos^(ν−2) θ.
    series, term = 1.0, 1.0
    for k in range(1, (df - 2) // 2 + 1):
        term *= c2 * (2 * k - 1) / (2 * k)
        series += term
    return math.sin(theta) * series


def t_cdf(t: float, df: int) -> float:
    """``P(T ≤ t)`` for Student's t with ``df`` (a whole number ≥ 1) degrees of freedom."""
    _check_df(df)
    half = 0.5 * _two_sided(abs(t), df)
    return 0.5 + half if t >= 0 else 0.5 - half


def t_quantile(p: float, df: int) -> float:
    """The ``t`` with ``P(T ≤ t) = p``, e.g. ``t_quantile(0.975, 2) ≈ 4.3027``."""
    _check_df(df)
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p}")
    if p == 0.5:
        return 0.0
    target = abs(2.0 * p - 1.0)  # P(|T| < t) at the quantile
    low, high = 0.0, 1.0
    while _two_sided(high, df) < target:
        high *= 2.0
        if math.isinf(high):
            return math.copysign(math.inf, p - 0.5)
    for _ in range(_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if _two_sided(middle, df) < target:
            low = middle
        else:
            high = middle
    value = 0.5 * (low + high)
    return value if p > 0.5 else -value


def _check_df(df: int) -> None:
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"degrees of freedom must be a whole number ≥ 1, got {df!r}")
