"""``sessionready monitor ...``: serving (``main``) and the staff's commands, one module per
area."""
