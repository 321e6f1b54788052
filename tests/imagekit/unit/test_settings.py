"""Settings: environment over config file over defaults; a bad file is a clear error; secrets
never come from a file; the operator's key file is checked before use."""

from __future__ import annotations

import pytest

from imagekit import settings, target
from imagekit.host import keys


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "imagekit.yml"
    monkeypatch.setenv("IMAGEKIT_CONFIG", str(path))
    for name in settings.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    settings._file.cache_clear()
    yield path
    settings._file.cache_clear()


def test_environment_wins_over_file_over_default(config, monkeypatch):
    config.write_text("IMAGEKIT_SERVER_TYPE: cx33\nAURA_API_URL: https://file.example\n")
    assert settings.get("IMAGEKIT_SERVER_TYPE") == "cx33"
    assert settings.get("IMAGEKIT_BASE_IMAGE") == "debian-12"
    monkeypatch.setenv("AURA_API_URL", "https://env.example")
    assert settings.get("AURA_API_URL") == "https://env.example"
    assert settings.choose("https://option.example", "AURA_API_URL") == "https://option.example"


@pytest.mark.parametrize("text, message", [
    ("IMAGEKIT_LOCATION: [fsn1\n", "not valid YAML (line 2)"),
    ("- a\n- b\n", "must be a mapping"),
    ("HCLOUD_TOKEN: abc\n", "secrets go in the environment"),
    ("TAILSCALE_OAUTH_CLIENT_SECRET: abc\n", "secrets go in the environment"),
    ("LOCATION: fsn1\n", "unknown settings: LOCATION"),
    ("IMAGEKIT_LOCATION: {a: 1}\n", "must be a plain value"),
])
def test_bad_config_files_are_clear_errors(config, text, message):
    config.write_text(text)
    with pytest.raises(settings.SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings.load()


def test_endpoint_without_token_is_an_error_not_the_local_cloud(config, monkeypatch):
    monkeypatch.delenv("HCLOUD_TOKEN", raising=False)
    monkeypatch.delenv("HETZNER_API_TOKEN", raising=False)
    monkeypatch.setenv("HCLOUD_ENDPOINT", "https://api.hetzner.cloud/v1")
    with pytest.raises(target.TargetError, match="no API token"):
        target.resolve(lambda m: None)


def test_operator_key_file(tmp_path):
    pair = keys.new_ed25519()
    good = tmp_path / "id_ed25519"
    good.write_text(pair.private_openssh)
    assert keys.load_ed25519(str(good)).public_openssh.split()[1] == pair.public_openssh.split()[1]
    with pytest.raises(keys.KeyFileError, match="cannot read"):
        keys.load_ed25519(str(tmp_path / "missing"))
    (tmp_path / "junk").write_text("not a key")
    with pytest.raises(keys.KeyFileError, match="not an unencrypted OpenSSH private key"):
        keys.load_ed25519(str(tmp_path / "junk"))


@pytest.mark.parametrize("name", sorted(settings.ENDPOINTS))
def test_endpoints_never_come_from_a_config_file(config, name):
    config.write_text(f"{name}: https://evil.example/v1\n")
    with pytest.raises(settings.SettingsError, match="API endpoints come only from the environment"):
        settings.load()


@pytest.mark.parametrize("value, ok", [
    ("https://api.hetzner.cloud/v1", True), ("http://127.0.0.1:8931/v1", True), ("http://[::1]:8931/v1", True),
    ("http://localhost:8931/v1", True), ("http://api.hetzner.cloud/v1", False), ("http://10.213.7.1:8931/v1", False),
    ("ftp://example.com", False), ("not a url", False),
])
def test_endpoints_are_https_except_on_loopback(config, monkeypatch, value, ok):
    for name in settings.ENDPOINTS:
        monkeypatch.setenv(name, value)
        if ok:
            assert settings.get(name) == value
        else:
            with pytest.raises(settings.SettingsError, match="must be an https:// URL"):
                settings.get(name)
