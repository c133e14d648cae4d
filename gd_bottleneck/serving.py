"""What an export and its clients agree on, in a module with no TensorFlow (a REST client imports it)."""

MAX_IMAGES_PER_REQUEST = 256  # bounds a request's time and memory; split bigger ones
