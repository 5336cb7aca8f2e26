"""The stage table: every stage package's row, in pipeline order.

A stage is one package, ``pipeline/stages/<name>/``, in one convention for all of them:

* ``params.py`` — the settings a run gives it (a pydantic model: only this stage's settings, so
  the fingerprint hashes exactly these), its code version and ``libraries(params)``;
* ``__init__.py`` — its :class:`~store_schema.contract.table.StageRow`, ``ROW``: what it reads
  from the store, ``prepare`` (how it names its other inputs for the fingerprint and the
  arguments that are not fingerprinted, such as where a model file lies), and its function as a
  dotted path;
* the computation in submodules, imported only when the stage computes: deciding that nothing
  needs computing imports no MNE, OpenCV or torch.

:func:`store_schema.run.runner.run_row` does the rest for every stage alike. Adding a stage: its
package here, and its :class:`~store_schema.contract.layout.StageSpec` (arrays and upstreams).

Model files are treated alike (faces' BlazeFace, tokens' Swin weights): their path is where to
find them (a keyword argument, never hashed), their content hash is an input (``model``,
``weights``): moving a file recomputes nothing, changing it recomputes the stage.
"""

from __future__ import annotations

from pipeline.stages import eeg, faces, ingest, segment, tokens
from store_schema.contract.layout import Stage
from store_schema.contract.table import StageRow

STAGE_TABLE: dict[Stage, StageRow] = {
    row.stage: row for row in (ingest.ROW, eeg.ROW, segment.ROW, faces.ROW, tokens.ROW)}
"""Every stage, in pipeline order."""
