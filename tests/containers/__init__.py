"""End-to-end tests of the container path on a real Docker engine (marker ``containers``)."""
