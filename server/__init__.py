"""The central server run by the Diskominfo (sync API, registries, reconciliation)."""

__version__ = "0.1.0"
