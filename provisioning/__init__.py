"""Provisioning: example configuration, systemd units, udev rules, install scripts, the demo."""
