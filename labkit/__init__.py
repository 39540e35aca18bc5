"""labkit: an open workbench for studying LLM efficiency.

The package holds the algorithms; the notebooks in ``notebooks/`` call it and write
paper-style figures and tables under ``figures/<study>/``.
"""

from labkit.errors import LabkitError

__version__ = "0.1.0"
__all__ = ["LabkitError", "__version__"]
