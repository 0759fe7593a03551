"""Small Dash components that several pages draw the same way. Pure: data in, components out;
a page module imports from here, never from another page."""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard.present import Flag


def flag_badge(flag: Flag, prefix: str = "", **attrs: Any) -> html.Span:
    """The flag's icon (hidden from screen readers) and its words, e.g. "⚠ Client: at risk";
    ``attrs`` (id, data-*) go on the outer span."""
    return html.Span([html.Span(flag.icon, className="flag-icon", **{"aria-hidden": "true"}), f" {prefix}{flag.label}"], className=flag.css_class, **attrs)
