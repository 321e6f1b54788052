"""Every error the API gives is in Hetzner's format, whatever was malformed (issue 11, item 4 and 6)."""

from __future__ import annotations

import requests

from imagekit.host.keys import new_ed25519
from localcloud.api import middleware


def test_malformed_path_id_is_invalid_input_not_the_frameworks_format(local_api):
    for path in ("/v1/servers/abc", "/v1/images/1.5", "/v1/actions/null", "/v1/servers/1/actions/xyz"):
        r = requests.get(local_api.base + path, headers=local_api.headers)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_input"
        assert r.json()["error"]["details"]["fields"][0]["name"] in ("id", "action_id")
        assert "detail" not in r.json()


def test_action_lists_of_a_kind_are_not_taken_for_a_resource_id(local_api):
    for kind in ("servers", "images", "firewalls"):
        r = requests.get(f"{local_api.base}/v1/{kind}/actions", headers=local_api.headers)
        assert r.status_code == 200, r.text
        assert r.json()["actions"] == []


def test_oversized_body_is_refused_in_hetzners_format_and_the_api_lives_on(local_api):
    r = requests.post(local_api.base + "/v1/ssh_keys", headers=local_api.headers, data=b"{" + b" " * (2 << 20))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "invalid_input" and "larger than" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: the limit must hold for a streamed body too
        for _ in range(40):
            yield b" " * 65536

    r = requests.post(local_api.base + "/v1/ssh_keys", headers=local_api.headers, data=chunks())
    assert r.status_code == 413
    assert requests.get(local_api.base + "/v1/locations", headers=local_api.headers).status_code == 200


def test_token_is_compared_in_constant_time(local_api, monkeypatch):
    seen = []
    real = middleware.secrets.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(middleware.secrets, "compare_digest", spy)
    assert requests.get(local_api.base + "/v1/locations", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert requests.get(local_api.base + "/v1/locations", headers=local_api.headers).status_code == 200
    assert [a for a, _ in seen] == [b"Bearer nope", f"Bearer {local_api.token}".encode()]


def test_wrong_body_types_are_invalid_input_not_a_crash(local_api):
    for path, body in (("/v1/ssh_keys", {"name": "k", "public_key": ["x"]}),
                       ("/v1/servers", {"name": "s", "server_type": "cx23", "image": "debian-12", "ssh_keys": 5}),
                       ("/v1/firewalls", {"name": "f", "apply_to": 1})):
        r = requests.post(local_api.base + path, headers=local_api.headers, json=body)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_input"


def test_renaming_onto_a_taken_name_is_a_uniqueness_error_for_every_kind(local_api):
    h, base = local_api.headers, local_api.base
    for plural, singular, extra in (("firewalls", "firewall", dict), ("ssh_keys", "ssh_key", lambda: {
            "public_key": new_ed25519().public_openssh})):
        ids = [requests.post(f"{base}/v1/{plural}", headers=h, json={"name": name, **extra()}).json()[singular]["id"]
               for name in ("one", "two")]
        r = requests.put(f"{base}/v1/{plural}/{ids[1]}", headers=h, json={"name": "one"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "uniqueness_error", (plural, r.text)
        assert requests.put(f"{base}/v1/{plural}/{ids[0]}", headers=h, json={"name": "one"}).status_code == 200


def test_admin_controls_answer_bad_input_in_hetzners_format(local_api):
    h, base = local_api.headers, local_api.base
    for method, path, data in (("PUT", "/_admin/faults", b"{nope"), ("PUT", "/_admin/faults", b'{"faults": 3}'),
                               ("PUT", "/_admin/rate_limit", b'{"limit": "many"}'),
                               ("GET", "/_admin/requests?since=x", None)):
        r = requests.request(method, base + path, headers=h, data=data)
        assert r.status_code == 400 and r.json()["error"]["code"] in ("json_error", "invalid_input"), (path, r.text)
    assert requests.put(base + "/_admin/faults", headers=h, json=[{"path": "^/v1/x$", "code": "conflict"}]).ok
    assert requests.get(base + "/_admin/faults", headers=h).json()["faults"][0]["code"] == "conflict"


def test_an_id_of_the_wrong_type_in_a_body_is_not_found_not_a_crash(local_api):
    for server in ({}, {"id": None}, {"id": {"x": 1}}, {"id": [1]}):
        r = requests.post(local_api.base + "/v1/firewalls", headers=local_api.headers,
                          json={"name": "fw", "apply_to": [{"type": "server", "server": server}]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (server, r.text)


def test_a_refused_update_changes_nothing(local_api):
    """A PUT with a good name and bad labels is refused whole: the name stays (api/update.py checks every field
    before it changes one)."""
    h, base = local_api.headers, local_api.base
    fid = requests.post(f"{base}/v1/firewalls", headers=h, json={"name": "before"}).json()["firewall"]["id"]
    r = requests.put(f"{base}/v1/firewalls/{fid}", headers=h, json={"name": "after", "labels": {"bad key!": "x"}})
    assert r.status_code == 400 and r.json()["error"]["details"]["fields"][0]["name"] == "labels", r.text
    assert requests.get(f"{base}/v1/firewalls/{fid}", headers=h).json()["firewall"]["name"] == "before"
