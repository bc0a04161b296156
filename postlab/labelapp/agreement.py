"""Inter-rater agreement: Cohen's κ for two raters, Krippendorff's α (nominal) for any number.

Cohen (1960): κ = (p_o − p_e) / (1 − p_e), with p_o the observed agreement and p_e = Σ_c p1(c)·p2(c)
the agreement expected from each rater's own category frequencies.

Krippendorff (2011, "Computing Krippendorff's Alpha-Reliability"), nominal metric: from the
coincidence matrix o_ck = Σ_u Σ_{i≠j} [v_ui = c][v_uj = k] / (m_u − 1) over units with m_u ≥ 2 values,
n_c = Σ_k o_ck and n = Σ_c n_c,  α = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k.
Both are None where undefined (no units, or every value in one category).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from itertools import permutations


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """κ over items both raters labelled: ``pairs`` holds (rater 1's value, rater 2's value) per item."""
    n = len(pairs)
    if n == 0:
        return None
    p_o = sum(a == b for a, b in pairs) / n
    c1, c2 = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    p_e = sum(c1[c] * c2[c] for c in c1) / n**2
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def krippendorff_alpha(units: Mapping[Hashable, Sequence[Hashable]]) -> float | None:
    """Nominal α; ``units`` maps each unit to the values its raters gave (any number, missing = absent)."""
    o: Counter = Counter()  # (c, k) -> coincidences
    for values in units.values():
        m_u = len(values)
        if m_u < 2:
            continue  # a single value cannot be paired
        for i, j in permutations(range(m_u), 2):
            o[values[i], values[j]] += 1 / (m_u - 1)
    n_c: Counter = Counter()
    for (c, _), w in o.items():
        n_c[c] += w
    n = sum(n_c.values())
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k)
    if n == 0 or expected == 0:
        return None
    observed = sum(w for (c, k), w in o.items() if c != k)
    return 1 - (n - 1) * observed / expected
