"""``python -m nablanet``: the same as the ``nablanet`` command."""

from .app.cli import run

run()
