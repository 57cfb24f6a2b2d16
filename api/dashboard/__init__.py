"""The coordinators' web dashboard, served by the API application (``/dashboard``)."""

from api.dashboard.pages import install

__all__ = ["install"]
