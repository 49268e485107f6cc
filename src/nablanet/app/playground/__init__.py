"""The playground (``nablanet serve``): a local web page to draw digits and train on toy data."""
