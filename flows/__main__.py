"""``python -m flows ...``: the ``milmer`` command line, for an environment without its script."""

from flows.cli import app

app(prog_name="milmer")
