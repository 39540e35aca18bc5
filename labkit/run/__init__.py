"""Run tooling: everything that runs, caches, stages, summarises and publishes study notebooks.

The layer above the studies: it knows studies only through the registry
(:mod:`labkit.studies`) and their notebooks, never by importing a study package.

- :mod:`.cli` -- the ``labkit`` command line (light imports: bad input is refused in < 1 s);
- :mod:`.runner` -- ``labkit run``: papermill on Dask, one kernel per notebook (x seed);
- :mod:`.staging` -- outputs written aside and promoted only on success;
- :mod:`.summary` -- the summary table and exit code of a run;
- :mod:`.seeds` -- ``--seeds``: one run per seed and the spread of the headlines;
- :mod:`.reference` -- the committed reference record (``results/``) and the docs blocks;
- :mod:`.gallery` -- ``figures/README.md``, every figure with its caption.
"""

import sys

# rfc3987-syntax (an optional extra of jsonschema that jupyter-events pulls in) compiles an
# Earley grammar when imported: 7-8 s on a 2-core machine, paid by every process that imports
# nbformat or papermill (the runner, each Dask worker). jsonschema uses it only to check the
# "iri" string formats, which no notebook schema has; with the import blocked, jsonschema
# skips those two checks. Measured: `import papermill` 9.1 s -> 1.0 s.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
