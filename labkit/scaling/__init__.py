"""Study 4: scaling-law fits, Kausik's unique-sequence bounds and a tiny-model sweep.

Modules: :mod:`.fit` (Chinchilla approach 3 and Kaplan's form, input checks, compute-optimal
allocation), :mod:`.bootstrap` (resampled refits, intervals), :mod:`.kausik` (the bounds),
:mod:`.sweep` (tiny decoders over N x D, unique n-grams), :mod:`.study` (tables and figures).
"""

from labkit.scaling.fit import FitDidNotConverge, FitResult, compute_optimal, load_points
from labkit.scaling.profiles import PROFILES

# ``labkit.scaling.fit`` stays the module (``from labkit.scaling.fit import fit`` for the call)
__all__ = ["FitDidNotConverge", "FitResult", "PROFILES", "compute_optimal", "load_points"]
