#!/usr/bin/python3
"""tailscale: the imagekit local cloud's STAND-IN for the Tailscale CLI.

Not the real Tailscale client: it enrols this machine with the local cloud's Tailscale
stand-in (an auth-key login that is recorded there) and creates no WireGuard tunnel.
"""
import argparse
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request

VERSION = "@VERSION@"
LOGIN_SERVER = "@LOGIN_SERVER@"
LOGIN_SERVER6 = "@LOGIN_SERVER6@"  # the same on the host's IPv6 address: what an IPv6-only guest reaches
STATE = os.environ.get("TAILSCALE_STANDIN_STATE", "/var/lib/tailscale/standin-state.json")


class Failure(Exception):
    pass


class Unreachable(Failure):
    pass


def load():
    try:
        with open(STATE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def save(state):
    os.makedirs(os.path.dirname(STATE), mode=0o700, exist_ok=True)
    tmp = STATE + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, STATE)


def call(server, path, body):
    req = urllib.request.Request(server.rstrip("/") + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        try:
            msg = json.load(exc).get("message", "")
        except ValueError:
            msg = ""
        raise Failure(f"backend error: {msg or exc} (Tailscale stand-in at {server})") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"cannot reach the Tailscale stand-in at {server}: {exc}") from exc


def on_host6(server):
    """``server`` on the host's IPv6 address when it names the host's IPv4 one (any port or path): what an
    IPv6-only guest reaches instead; None for any other server."""
    url, host4, host6 = (urllib.parse.urlsplit(u) for u in (server, LOGIN_SERVER, LOGIN_SERVER6))
    try:
        port = url.port
    except ValueError:
        return None
    if url.hostname != host4.hostname or host6.hostname == host4.hostname:
        return None
    return urllib.parse.urlunsplit(url._replace(netloc=f"[{host6.hostname}]" + (f":{port}" if port else "")))


def backend_state(state):
    if not state.get("node_id"):
        return "NeedsLogin"
    return "Running" if state.get("authorized") else "NeedsMachineAuth"


def read_key(value):
    """``file:/path`` keeps the key off command lines, as with the real client."""
    if value.startswith("file:"):
        with open(value[5:]) as f:
            return f.read().strip()
    return value


def cmd_up(args):
    state = load()
    if state.get("node_id") and not args.force_reauth:
        return  # already logged in: like tailscale, the auth key is not used again
    if not args.authkey:
        raise Failure("the Tailscale stand-in supports only auth-key login: pass --authkey=KEY "
                      "or --authkey=file:/path")
    try:
        key = read_key(args.authkey)
    except OSError as exc:
        raise Failure(f"cannot read auth key: {exc}") from exc
    tags = [t for t in args.advertise_tags.split(",") if t]
    hostname = args.hostname or socket.gethostname()
    server = args.login_server
    body = {"authkey": key, "hostname": hostname, "os": "linux", "client_version": VERSION, "advertise_tags": tags}
    try:
        reply = call(server, "/standin/register", body)
    except Unreachable:
        server = on_host6(server)
        if server is None:
            raise
        reply = call(server, "/standin/register", body)  # an IPv6-only guest
    if state.get("node_id"):
        try:
            call(state["login_server"], "/standin/logout", {"node_id": state["node_id"]})
        except Failure:
            pass  # the old node is gone already or its server is; the new login stands
    save({"login_server": server, "hostname": hostname, "tags": tags, **reply})


def cmd_status(args):
    state = load()
    ips = [state["address"]] if state.get("address") else []
    if args.json:
        print(json.dumps({
            "Version": VERSION,
            "StandIn": True,
            "BackendState": backend_state(state),
            "TailscaleIPs": ips,
            "Self": {
                "ID": state.get("node_id", ""),
                "HostName": state.get("hostname") or socket.gethostname(),
                "DNSName": state["name"] + "." if state.get("name") else "",
                "OS": "linux",
                "TailscaleIPs": ips,
                "Tags": state.get("tags", []),
                "Online": bool(ips),
            },
            "MagicDNSSuffix": state.get("tailnet_name", ""),
            "CurrentTailnet": {"Name": state["tailnet_name"]} if state.get("tailnet_name") else None,
            "Peer": {},
            "Health": ["imagekit stand-in: no WireGuard tunnel, no peers"],
        }, indent=2))
        return 0
    if not state.get("node_id"):
        print("Logged out. (imagekit Tailscale stand-in: log in with tailscale up --authkey=...)")
        return 1
    print(f"{state['address']}  {state['hostname']}  {'tagged-devices' if state.get('tags') else '-'}  linux  -")
    print(f"# imagekit stand-in for Tailscale ({backend_state(state)}); no tunnel, peers not shown")
    return 0


def cmd_logout(args):
    state = load()
    if state.get("node_id"):
        try:
            call(state["login_server"], "/standin/logout", {"node_id": state["node_id"]})
        except Failure as exc:
            if "not found" not in str(exc):
                raise
    save({})


def cmd_ip(args):
    state = load()
    if not state.get("address"):
        raise Failure(f"no current Tailscale IPs; state: {backend_state(state)} (imagekit stand-in)")
    if args.six:
        raise Failure("the Tailscale stand-in assigns no IPv6 address")
    print(state["address"])


def cmd_version(args):
    print(f"{VERSION} (imagekit stand-in)")


def parser():
    p = argparse.ArgumentParser(prog="tailscale", description=(
        "imagekit local cloud stand-in for the Tailscale CLI (not the real client; no tunnel)"))
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="log in with an auth key")
    up.add_argument("--authkey", "--auth-key", dest="authkey", default="",
                    help="auth key, or file:/path to read it from a file")
    up.add_argument("--hostname", default="")
    up.add_argument("--advertise-tags", default="", help="comma-separated tags, within the key's tags")
    up.add_argument("--login-server", default=LOGIN_SERVER, help=f"default {LOGIN_SERVER}")
    up.add_argument("--force-reauth", nargs="?", const=True, default=False,
                    type=lambda v: v.lower() in ("true", "1"), help="log in again with a new node")
    for flag in ("--reset", "--ssh", "--accept-dns", "--accept-routes", "--shields-up"):
        up.add_argument(flag, nargs="?", const="true", help="accepted; no effect in the stand-in")
    up.add_argument("--timeout", help="accepted; no effect in the stand-in")
    up.set_defaults(func=cmd_up)
    status = sub.add_parser("status", help="show login state")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("logout", help="log out; ephemeral nodes are removed").set_defaults(func=cmd_logout)
    ip = sub.add_parser("ip", help="print this node's Tailscale address")
    ip.add_argument("-4", dest="four", action="store_true")
    ip.add_argument("-6", dest="six", action="store_true")
    ip.set_defaults(func=cmd_ip)
    sub.add_parser("version", help="print the version").set_defaults(func=cmd_version)
    return p


def main():
    args = parser().parse_args()
    try:
        sys.exit(args.func(args) or 0)
    except Failure as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
