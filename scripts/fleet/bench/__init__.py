"""Load benchmark of the bundled app (``fleet bench``)."""
