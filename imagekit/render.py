"""The tasks' results as text for a terminal: the tables and one-line summaries a task prints without --json,
and the line that names what went wrong in a result printed all the same. Kept apart from the task table
(imagekit/tasks), so that a task reads as its options and one call."""

from __future__ import annotations

from typing import Any

Result = dict[str, Any]


def yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def cloud_status(st: Result) -> str:
    if not st["running"]:
        return f"local cloud: not running (state in {st['state_dir']}); start it with `invoke cloud-up`"
    keys = ("endpoint", "token", "state_dir", "btrfs", "servers", "arm", "tailscale_standin_api")
    return "\n".join(f"{key:24} {st[key]}" for key in keys)


def roundtrip(r: Result) -> str:
    return (f"round trip ok: SSH after {r['seconds']['ssh']} s, cloud-init done after {r['seconds']['cloud_init']} s, "
            f"total {r['seconds']['total']} s")


def gc(r: Result) -> str:
    others = f", {len(r['other_servers'])} other server(s)" if r["other_servers"] else ""
    spared = f"; {len(r['spared'])} pool host(s) left alone" if r["spared"] else ""
    expired = f" ({len(r['expired'])} of them because their TTL had passed)" if r.get("expired") else ""
    return (f"deleted {len(r['servers'])} builder server(s), {len(r['agent_servers'])} agent server(s), "
            f"{len(r['job_servers'])} job server(s), {len(r['pool_servers'])} pool host(s){others}{expired} and "
            f"{len(r['ssh_keys'])} key(s){spared}")


def agents(r: Result) -> str:
    """provision's table: one agent a line."""
    def row(a: Result) -> str:
        took = f"{a['seconds_to_ready']:.1f} s" if a["seconds_to_ready"] is not None else "-"
        return (f"{a['agent_id']:24} {a['status']:9} {str(a['server_id'] or '-'):>10} {a['name']:24} "
                f"{a['ipv4'] or '-':16} {a['mode'] or '-':9} {took}")

    return "\n".join(row(a) for a in r["agents"])


def failed_agents(r: Result) -> str | None:
    bad = [a for a in r["agents"] if a["status"] == "failed"]
    return (f"{len(bad)} of {len(r['agents'])} agent(s) failed: "
            + "; ".join(f"{a['agent_id']}: {a['error']}" for a in bad)) if bad else None


HEALTH = {True: "yes", False: "NO", None: "UNCHECKED"}


def status(r: Result) -> str:
    if "sweeps" in r:
        return (f"watch ended: {r['sweeps']} check(s), {r['api_refreshes']} API read(s), {r['alerts']} alert(s), "
                f"{r['recoveries']} recovery(ies)")
    lines = [f"{'AGENT':24} {'HEALTHY':9} {'SERVER':>10} {'PRIVATE IP':15} {'SERVICE':10} {'RESTARTS':>8} "
             f"{'TAILSCALE':9} {'SNAPSHOT':>10} DRIFT {'CODE':10} {'EXPIRES':20} PROBLEMS"]
    lines += [f"{a['agent_id'] or '-':24} {HEALTH[a['healthy']]:9} {a['server_id']:>10} "
              f"{a.get('private_ip') or '-':15} {a['service'] or '-':10} "
              f"{a['restarts'] if a['restarts'] is not None else '-':>8} {yes_no(a['tailscale_online']):9} "
              f"{a['snapshot_id'] or '-':>10} {yes_no(a['drift']):5} "
              f"{(a.get('code_digest') or '-')[:10]:10} {a.get('expires_at') or '-':20} "
              f"{'; '.join(a['problems'] + a['unchecked']) or '-'}"
              for a in r["agents"]]
    return "\n".join(lines)


def update(r: Result) -> str:
    return "\n".join(f"{a['agent_id'] or '-':24} {a['status']:12} {a['server_id']:>10} "
                     f"{a['seconds'] if a['seconds'] is not None else '-'}" for a in r["agents"])


def roll(r: Result) -> str:
    return "\n".join(f"{a['agent_id']:24} {a['status']:11} {a['old_server_id'] or '-':>10} -> "
                     f"{a['new_server_id'] or '-':<10} snapshot {a['old_snapshot_id'] or '-'} -> "
                     f"{a['new_snapshot_id']}" for a in r["agents"])


def not_done(r: Result, done: tuple[str, ...]) -> str | None:
    """update's and roll's failure line: each agent whose status is not one of ``done``, with its error."""
    bad = [a for a in r["agents"] if a["status"] not in done]
    return "; ".join(f"{a['agent_id']}: {a['status']}" + (f" ({a['error']})" if a["error"] else "")
                     for a in bad) or None


def pool(r: Result) -> str:
    from .pool.members import describe_cost

    lines = [f"{'SERVER':>10} {'NAME':24} {'STATUS':10} {'READY':6} {'SNAPSHOT':>10} {'STALE':6} {'IPV4':16} "
             "LOCATION"]
    lines += [f"{m['server_id']:>10} {m['name']:24} {m['status']:10} {yes_no(m['ready']):6} "
              f"{m['snapshot_id'] or '-':>10} {yes_no(m['stale']):6} {m['ipv4'] or '-':16} {m['location'] or '-'}"
              for m in r["members"]]
    return "\n".join(lines + ["", describe_cost(r["cost"])])


def listing(r: Result) -> str:
    lines = [f"{'AGENT':24} {'SERVER':>10} {'STATUS':10} {'IPV4':16} {'MODE':9} CREATED"]
    lines += [f"{a['agent_id'] or '-':24} {a['server_id']:>10} {a['status']:10} {a['ipv4'] or '-':16} "
              f"{a['mode'] or '-':9} {a['created']}" for a in r["agents"]]
    lines += ["", f"{'SNAPSHOT':>10} {'PROFILE':10} {'ARCH':5} {'SIZE GB':>8} {'CREATED':26} DESCRIPTION"]
    lines += [f"{s['snapshot_id']:>10} {s['profile'] or '-':10} {s['architecture'] or '-':5} {s['size_gb'] or 0:>8} "
              f"{s['created']:26} {s['description']}" for s in r["snapshots"]]
    return "\n".join(lines)


def cost(r: Result) -> str:
    """invoke cost's table: each group per hour and per month, the total, and the caps' excess."""
    cur = r["currency"]
    lines = [f"{'':14} {'COUNT':>5} {cur + '/HOUR':>12} {cur + '/MONTH':>12}   (gross, VAT {r['vat_rate']} %)"]
    lines += [f"{name:14} {g['count']:>5} {g['hourly']:>12.4f} {g['monthly']:>12.2f}"
              + (f"   {g['gb']} GB" if "gb" in g else "") for name, g in r["groups"].items()]
    lines.append(f"{'total':14} {'':>5} {r['total']['hourly']:>12.4f} {r['total']['monthly']:>12.2f}")
    if (saved := r["ipv4_saved"])["count"]:
        lines.append(f"{'ipv4 saved':14} {saved['count']:>5} {saved['hourly']:>12.4f} {saved['monthly']:>12.2f}"
                     "   (IPv6-only servers: no IPv4 to pay for)")
    caps = r["caps"]
    if caps["servers_over"] is not None:
        lines.append(f"over IMAGEKIT_MAX_SERVERS ({caps['max_servers']}) by {caps['servers_over']:g} server(s)")
    if caps["hourly_over"] is not None:
        lines.append(f"over IMAGEKIT_MAX_HOURLY ({caps['max_hourly']:g}) by {caps['hourly_over']:.4f} {cur}/hour "
                     "(servers and Primary IPv4s)")
    return "\n".join(lines)
