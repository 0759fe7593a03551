"""The ``[agent]`` table: defaults, validation by key name, the shipped sample, platform spool
paths and the environment's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.config import AgentConfig, AgentSection, default_spool_path, load_agent_config
from sessionready.config import ConfigError

SAMPLE = Path(__file__).parent.parent.parent / "agents" / "agent.sample.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_the_sample_config_loads_and_shows_the_defaults() -> None:
    config = load_agent_config(SAMPLE, environ={})
    assert config.agent == AgentSection()
    assert config == AgentConfig(source=str(SAMPLE))
    # Every [agent] key is in the sample, so the sample documents them all.
    text = SAMPLE.read_text()
    for name in AgentSection.__dataclass_fields__:
        assert f"\n{name} = " in text, name


def test_defaults_match_the_contract() -> None:
    agent = AgentSection()
    assert (agent.spool_path, agent.spool_max_mb, agent.background_interval_s, agent.machine_interval_s) == ("", 20.0, 300.0, 60.0)
    assert (agent.burst_seconds, agent.pre_session_lead_minutes, agent.sessions_poll_s, agent.live_interval_s, agent.notify) == (2.0, 15.0, 60.0, 2.0, True)


def test_values_are_read_and_fractions_allowed(tmp_path: Path) -> None:
    path = write(tmp_path, "[agent]\npre_session_lead_minutes = 0.1\nbackground_interval_s = 1\nlive_interval_s = 0.5\nnotify = false\nspool_path = '~/spool.db'\n")
    config = load_agent_config(path, environ={})
    assert config.agent.pre_session_lead_minutes == 0.1 and config.agent.background_interval_s == 1.0
    assert config.agent.live_interval_s == 0.5 and config.agent.notify is False
    assert config.spool_file == Path.home() / "spool.db"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[agent]\nbackground_intervall_s = 5\n", "agent.background_intervall_s"),
        ("[agent]\nmachine_interval_s = 0.1\n", "agent.machine_interval_s"),
        ("[agent]\npre_session_lead_minutes = -1\n", "agent.pre_session_lead_minutes"),
        ("[agent]\nnotify = 'yes'\n", "agent.notify"),
        ("[agent]\nspool_max_mb = 0\n", "agent.spool_max_mb"),
        ("[agent]\nlive_interval_s = 120\n", "agent.live_interval_s"),
        ("agent = 3\n", "'agent' must be a table"),
        ("[agnet]\nnotify = true\n", "unknown key 'agnet'"),
    ],
)
def test_bad_values_are_rejected_by_name(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_agent_config(write(tmp_path, text), environ={})
    assert named in str(error.value)


def test_environment_overrides_url_and_token(tmp_path: Path) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text("from-the-file-123\n")
    path = write(tmp_path, f'[monitor]\nurl = "https://file.example:8470"\ntoken_file = "{token_file}"\n')
    plain = load_agent_config(path, environ={})
    assert plain.url == "https://file.example:8470" and plain.token() == "from-the-file-123"
    env = {"SESSIONREADY_MONITOR_URL": "https://env.example:8470", "SESSIONREADY_TOKEN": "from-the-env-456"}
    overridden = load_agent_config(path, environ=env)
    assert overridden.url == "https://env.example:8470" and overridden.token() == "from-the-env-456"
    assert "from-the-env-456" not in repr(overridden)
    # Without any file, the environment alone is enough.
    assert load_agent_config(None, environ={**env, "SESSIONREADY_CONFIG": str(tmp_path / "absent.toml")}).url == "https://env.example:8470"
    # SESSIONREADY_CONFIG names the file.
    assert load_agent_config(None, environ={"SESSIONREADY_CONFIG": str(path)}).url == "https://file.example:8470"


def test_a_systemd_token_credential_is_read_before_the_token_file(tmp_path: Path) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text("from-the-file-123\n")
    path = write(tmp_path, f'[monitor]\ntoken_file = "{token_file}"\n')
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "token").write_text("from-the-credential-789\n")
    env = {"CREDENTIALS_DIRECTORY": str(credentials)}
    assert load_agent_config(path, environ=env).token() == "from-the-credential-789"
    # The environment's token still comes first; a directory without a token is ignored.
    assert load_agent_config(path, environ={**env, "SESSIONREADY_TOKEN": "from-the-env-456"}).token() == "from-the-env-456"
    (credentials / "token").unlink()
    assert load_agent_config(path, environ=env).token() == "from-the-file-123"


def test_platform_spool_paths(tmp_path: Path) -> None:
    home = {"HOME": "/home/ana"}
    assert default_spool_path(home, "linux") == Path("/home/ana/.local/state/sessionready/spool.sqlite3")
    assert default_spool_path({**home, "XDG_STATE_HOME": "/xdg/state"}, "linux") == Path("/xdg/state/sessionready/spool.sqlite3")
    # Under systemd (StateDirectory=) the unit's directory wins, the first of several.
    assert default_spool_path({**home, "STATE_DIRECTORY": "/var/lib/sessionready:/var/lib/other"}, "linux") == Path("/var/lib/sessionready/spool.sqlite3")
    assert default_spool_path({"HOME": "/Users/ana"}, "darwin") == Path("/Users/ana/Library/Application Support/sessionready/spool.sqlite3")
    assert default_spool_path({"LOCALAPPDATA": "C:/Users/ana/AppData/Local"}, "win32") == Path("C:/Users/ana/AppData/Local/sessionready/spool.sqlite3")
    assert load_agent_config(None, environ={"SESSIONREADY_CONFIG": str(tmp_path / "none.toml")}).spool_file == default_spool_path()
