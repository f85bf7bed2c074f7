"""Shared code of the load-test locustfiles: event generation, users, load shapes and the release gate."""
