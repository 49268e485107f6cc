"""Exercises: the learner writes the layer, nablanet says what is wrong (:func:`check`)."""
