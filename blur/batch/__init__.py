"""A run over folders: discover the files, run each through its pipeline, keep a resume journal, report.

`discover` walks the inputs and mirrors them under the output folder; `pool` runs photos across
worker processes and videos one at a time; `journal` lets an interrupted run resume; `workfiles`
names the files blur writes besides outputs; `report` counts and writes the JSON report.
"""
