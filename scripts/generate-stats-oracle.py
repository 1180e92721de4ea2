"""Independent high-precision reference values for taggants' statistics (src/stats/).

Writes test/fixtures/stats-oracle.json, which test/stats/*.test.ts compare against:

- binomial: log10 P[X >= h], X ~ Binomial(K, k/C), by exact summation of the probability mass
  function in 40-digit mpmath arithmetic (the TypeScript code uses a saddle-point expansion in
  double precision instead, so the two share no algorithm);
- fisher: log10 P[chi2(2R) >= -2 sum ln p_r] from mpmath's regularised incomplete gamma
  function, for p-value patterns log10 p_r = a + b * r / (R - 1) (r = 0..R-1) evaluated in
  float64 exactly as the tests evaluate them;
- clopper_pearson: scipy's beta quantiles.

Run: node scripts/run-python.mjs scripts/generate-stats-oracle.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mpmath
import scipy
from scipy import stats

mpmath.mp.dps = 40

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "stats-oracle.json"

# (k, C): null hit rates k/C from 0.5 down to 1e-5.
RATES = [
    (1, 2),
    (3, 10),
    (1, 10),
    (1, 100),
    (5, 1000),
    (1, 1000),
    (1, 10**4),
    (1, 10**5),
]
SMALL_K = [1, 2, 3, 5, 10, 20, 50, 100]  # every h from below the mean to K
LARGE_K = [1000, 10000, 100000]  # h sampled: dense near the mean, geometric to K


def tail_log10s(keys: int, k: int, classes: int, hits: list[int]) -> list[float]:
    """log10 P[X >= h] for each h, from the exact pmf summed from the top down."""
    p = mpmath.mpf(k) / classes
    q = mpmath.mpf(classes - k) / classes
    terms = [q**keys]
    for j in range(keys):
        terms.append(terms[-1] * (keys - j) / (j + 1) * p / q)
    suffix = [mpmath.mpf(0)] * (keys + 2)
    for j in range(keys, -1, -1):
        suffix[j] = suffix[j + 1] + terms[j]
    # Below the mean the tail is 1 minus a small lower sum: take that sum, not 1 - (1 - it).
    prefix = [mpmath.mpf(0)] * (keys + 2)
    for j in range(keys + 1):
        prefix[j + 1] = prefix[j] + terms[j]
    mean = keys * p
    ln10 = mpmath.log(10)
    return [
        float(mpmath.log10(suffix[h]) if h > mean else mpmath.log1p(-prefix[h]) / ln10)
        for h in hits
    ]


def hits_for(keys: int, k: int, classes: int) -> list[int]:
    mean = keys * k / classes
    sd = math.sqrt(keys * k / classes * (1 - k / classes))
    below = {max(0, math.floor(mean - 2 * sd)), max(0, math.floor(mean) - 1), 0}
    if keys in SMALL_K:
        chosen = set(range(max(0, math.floor(mean)), keys + 1)) | below
    else:
        near = {math.floor(mean + sd * t / 4) for t in range(41)}
        far = {round(mean + (keys - mean) * (i / 40) ** 2) for i in range(41)}
        chosen = near | far | below | {keys - 1, keys}
    return sorted(h for h in chosen if 0 <= h <= keys)


def binomial_cases() -> list[list]:
    cases = []
    for keys in SMALL_K + LARGE_K:
        for k, classes in RATES:
            hits = hits_for(keys, k, classes)
            for h, value in zip(hits, tail_log10s(keys, k, classes, hits), strict=True):
                cases.append([keys, k, classes, h, value])
    return cases


RUNS = [1, 2, 3, 5, 10, 30, 100, 300, 1000]
# (a, b): log10 p_r = a + b * r / (R - 1); from p-values near 1 to far below 1e-300.
PATTERNS = [
    (-1e-8, 0.0),
    (-0.01, 0.0),
    (-0.3, 0.0),
    (-0.001, -0.5),
    (-1.0, -2.0),
    (-5.0, 0.0),
    (-20.0, -10.0),
    (-300.0, 0.0),
    (-400.0, -100.0),
    (-50000.0, 0.0),
]


def fisher_log10(runs: int, a: float, b: float) -> float:
    log10ps = [a + (b * r / (runs - 1) if runs > 1 else 0.0) for r in range(runs)]
    s = -mpmath.log(10) * mpmath.fsum(mpmath.mpf(v) for v in log10ps)
    lower = mpmath.gammainc(runs, 0, s, regularized=True)  # P[Poisson(s) >= R]
    if lower < 0.5:
        return float(mpmath.log1p(-lower) / mpmath.log(10))
    return float(mpmath.log10(mpmath.gammainc(runs, s, mpmath.inf, regularized=True)))


def fisher_cases() -> list[list]:
    cases = [(runs, a, b) for runs in RUNS for a, b in PATTERNS]
    return [[runs, a, b, fisher_log10(runs, a, b)] for runs, a, b in cases]


def clopper_pearson_cases() -> list[list]:
    cases = []
    for trials in [1, 10, 100, 1000, 10000]:
        for hits in sorted({0, 1, trials // 3, trials // 2, trials - 1, trials}):
            for confidence in [0.95, 0.99]:
                half = (1 - confidence) / 2
                misses = trials - hits
                lower = stats.beta.ppf(half, hits, misses + 1) if hits > 0 else 0.0
                upper = stats.beta.isf(half, hits + 1, misses) if misses > 0 else 1.0
                cases.append([hits, trials, confidence, float(lower), float(upper)])
    return cases


def main() -> None:
    oracle = {
        "generated_by": f"scripts/generate-stats-oracle.py (mpmath {mpmath.__version__}, "
        f"scipy {scipy.__version__}, {mpmath.mp.dps} digits)",
        "binomial_columns": ["keys", "top_k", "classes", "hits", "log10_p"],
        "binomial": binomial_cases(),
        "fisher_columns": ["runs", "a", "b", "log10_p"],
        "fisher_inputs": "log10 p_r = a + b * r / (runs - 1), r = 0..runs-1 (a if runs = 1)",
        "fisher": fisher_cases(),
        "clopper_pearson_columns": ["hits", "trials", "confidence", "lower", "upper"],
        "clopper_pearson": clopper_pearson_cases(),
    }
    text = json.dumps(oracle, separators=(",", ":"))
    OUT.write_text(text.replace("],[", "],\n[") + "\n")
    counts = f"{len(oracle['binomial'])} binomial, {len(oracle['fisher'])} fisher cases"
    print(f"wrote {OUT} ({counts})")


if __name__ == "__main__":
    main()
