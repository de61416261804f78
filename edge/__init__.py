"""The edge: records card taps durably on the device and syncs them later."""

__version__ = "0.1.0"
