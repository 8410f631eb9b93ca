"""Errors the lab reports to its user."""


class LabError(Exception):
    """A problem the user can act on; printed without a traceback."""
