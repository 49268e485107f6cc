"""The applications: plots, whole runs of each command (``run``), and the ``nablanet`` command line."""
