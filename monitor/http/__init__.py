"""The monitor's HTTP API, one module per area: its handlers, request and response types, and
``add_routes``. The application (``monitor.app``) mounts them; the OpenAPI document
(``monitor.openapi``) is built from the same types."""
