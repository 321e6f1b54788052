"""The Tailscale stand-in end to end: a real guest installs the stand-in package from the local
apt repository, enrols with an auth key minted through the OAuth client, and shows up as a
device in the stand-in's API. (Tailscale's real service cannot be reached from here.)"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request

import pytest
from hcloud.images import Image
from hcloud.server_types import ServerType

from imagekit.host import ssh
from localcloud.paths import HOST_ADDRESS

pytestmark = pytest.mark.e2e


def ts_api(ep, method, path, *, token=None, form=None, body=None):
    base = ep.base + "/tailscale/api/v2"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def test_guest_enrols_with_an_ephemeral_tagged_key(cloud_unchanged, cloud_endpoint, keypair):
    client = cloud_unchanged
    oauth = cloud_endpoint.admin("GET", "/_admin/tailscale")["oauth_client"]
    token = ts_api(cloud_endpoint, "POST", "/oauth/token",
                   form={"client_id": oauth["client_id"], "client_secret": oauth["client_secret"],
                         "grant_type": "client_credentials"})["access_token"]
    key = ts_api(cloud_endpoint, "POST", "/tailnet/-/keys", token=token, body={
        "capabilities": {"devices": {"create": {"reusable": False, "ephemeral": True, "preauthorized": True,
                                                "tags": ["tag:agent"]}}},
        "expirySeconds": 600, "description": "e2e"})
    user_data = f"""#cloud-config
apt:
  sources:
    imagekit-standin:
      source: "deb [trusted=yes] http://{HOST_ADDRESS}:{cloud_endpoint.base.rsplit(':', 1)[1]}/apt ./"
packages: [tailscale]
write_files:
  - path: /run/ts-authkey
    permissions: "0600"
    content: {key["key"]}
runcmd:
  - [tailscale, up, --auth-key=file:/run/ts-authkey, --hostname=ts-e2e, --advertise-tags=tag:agent]
  - [rm, -f, /run/ts-authkey]
"""
    sk = client.ssh_keys.create(name="ts-e2e", public_key=keypair.public_openssh)
    resp = client.servers.create(name="ts-e2e", server_type=ServerType(name="cx23"), image=Image(name="debian-12"),
                                 ssh_keys=[sk], user_data=user_data)
    resp.action.wait_until_finished(120)
    ip = client.servers.get_by_id(resp.server.id).public_net.ipv4.ip
    conn = ssh.wait_for_ssh(ip, keypair, pin=None, deadline=time.monotonic() + 120)
    code, out, err = ssh.run(conn, "cloud-init status --wait; tailscale status --json; systemctl is-active tailscaled;"
                                   " tailscale version")
    assert code == 0, out + err
    assert "status: done" in out
    status = json.loads(out[out.index("{"): out.rindex("}") + 1])
    assert status["BackendState"] == "Running" and status["StandIn"] is True
    assert "active" in out.splitlines() and "stand-in" in out

    devices = ts_api(cloud_endpoint, "GET", "/tailnet/-/devices", token=token)["devices"]
    (device,) = [d for d in devices if d["hostname"] == "ts-e2e"]
    assert device["tags"] == ["tag:agent"] and device["ephemeral"] is True and device["authorized"] is True

    assert ssh.run(conn, "tailscale logout")[0] == 0
    conn.close()
    devices = ts_api(cloud_endpoint, "GET", "/tailnet/-/devices", token=token)["devices"]
    assert not [d for d in devices if d["hostname"] == "ts-e2e"]  # ephemeral: gone on logout
    client.servers.delete(resp.server).wait_until_finished(120)
    sk.delete()
