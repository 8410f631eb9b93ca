"""Errors the lab reports to its user."""

from fleet.errors import FleetError


class LabError(FleetError):
    """A problem the user can act on; printed without a traceback."""
