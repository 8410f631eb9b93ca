"""Errors the operations CLI reports to its user."""


class OpsError(Exception):
    """A problem the user can act on; printed without a traceback."""
