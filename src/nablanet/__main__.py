"""``python -m nablanet``: the same as the ``nablanet`` command."""

import sys

from .app.cli import main

sys.exit(main())
