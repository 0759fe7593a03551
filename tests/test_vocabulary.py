"""The shared terms and words (``sessionready.terms``, ``sessionready.words``) and the helpers
folded into one: each is defined once, and the parts that used their own copies agree."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from monitor.errors import ApiError, id_param
from monitor.http.sessions import zone_param
from sessionready import quality, terms
from sessionready.words import TIER_WORDS, percent


@pytest.mark.parametrize(
    ("ratio", "spaced", "unspaced"),
    [
        (0.0, "0 %", "0%"),
        (0.0009, "under 0.1 %", "under 0.1%"),
        (0.001, "0.1 %", "0.1%"),  # 0.1 %: exactly at the "under" boundary, so a number
        (0.08, "8.0 %", "8.0%"),
        (0.1, "10 %", "10%"),  # 10 %: from here on, no decimal
        (1.0, "100 %", "100%"),
    ],
)
def test_one_percent_format_in_two_spacings(ratio: float, spaced: str, unspaced: str) -> None:
    assert percent(ratio) == spaced  # the risk engine's and the dashboard's form
    assert percent(ratio, sep="") == unspaced  # the quality model's, in what a client reads


def test_every_ranked_video_tier_has_words() -> None:
    assert set(TIER_WORDS) == set(quality.VIDEO_TIERS) - {"unknown"}


def test_the_roles_nest() -> None:
    assert set(terms.STAFF_ROLES) < set(terms.USER_ROLES) < set(terms.AGENT_ROLES)
    assert set(terms.PARTICIPANT_ROLES) < set(terms.AGENT_ROLES)
    assert terms.ENROLL_ROLES == terms.PARTICIPANT_ROLES
    assert quality.VERDICTS is terms.VERDICTS and quality.SEVERITIES is terms.SEVERITIES


def test_the_monitor_cli_does_not_import_the_top_level_cli() -> None:
    # sessionready.cli builds its parser from monitor.cli.main: the other way round was a cycle.
    code = "import sys, monitor.cli.main, monitor.cli.users, monitor.cli.caseloads, monitor.cli.sessions, dashboard.cli; print('sessionready.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_id_param_names_the_parameter() -> None:
    assert id_param(None, "therapist") is None
    assert id_param("t-1", "therapist") == "t-1"
    with pytest.raises(ApiError) as caught:
        id_param("a b", "session_id")
    assert (caught.value.status, caught.value.code, caught.value.field) == (400, "bad_parameter", "session_id")


def test_one_zone_parser_with_each_endpoints_error_code() -> None:
    assert zone_param("+05:30").utcoffset(None) == timedelta(hours=5, minutes=30)
    assert str(zone_param("Europe/Berlin", imported=True)) == "Europe/Berlin"
    for text, imported, code in (("Mars/Olympus", False, "bad_parameter"), ("Mars/Olympus", True, "invalid_field"), ("+05:30", True, "invalid_field"), ("+24:00", False, "bad_parameter")):
        with pytest.raises(ApiError) as caught:
            zone_param(text, imported=imported)
        assert (caught.value.code, caught.value.field) == (code, "tz"), text
