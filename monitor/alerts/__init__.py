"""Alerts: the ``[alerts]`` config (``config``) and the worker that turns risk changes into
webhook deliveries with retries (``delivery``)."""
