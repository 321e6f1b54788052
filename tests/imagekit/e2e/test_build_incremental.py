"""`build-snapshot --from`: a build grown from the session's snapshot (packages upgraded, the idempotent playbooks
re-run, checked, cleaned) is labelled with its parent and passes the same checks on a clone; its time against the
session's full build is printed (the figure itself is `invoke bench`'s `incremental_over_full`)."""

from __future__ import annotations

import json

import pytest
from operator_cli import invoke

pytestmark = pytest.mark.e2e


def test_a_build_grown_from_a_snapshot_is_labelled_and_passes_the_checks(cloud_unchanged, built, client):
    full, _ = built
    grown = invoke("build-snapshot", "--from", str(full["snapshot_id"]), "--force", "--json")
    assert grown.returncode == 0, grown.stderr[-3000:]
    result = json.loads(grown.stdout)
    try:
        assert result["reused"] is False and result["parent_snapshot_id"] == full["snapshot_id"]
        assert result["labels"]["parent-snapshot"] == str(full["snapshot_id"])
        assert result["inputs_hash"] != full["inputs_hash"]  # its own inputs: it starts from another image
        assert f"snapshot {full['snapshot_id']} (grown" in grown.stderr
        # The parent was cleaned of its package lists: they are fetched again, or no upgrade could be seen;
        # the steps whose work the parent holds find nothing to do.
        assert "[changed]   apt package lists" in grown.stderr, grown.stderr[-3000:]
        assert "[ok]        user openclaw" in grown.stderr and "[changed]   user openclaw" not in grown.stderr
        print(f"incremental build {result['seconds']} s, full build {full['seconds']} s: "
              f"{result['seconds'] / full['seconds']:.2f}", result["durations"])
        verified = invoke("verify", "--snapshot", str(result["snapshot_id"]))
        assert verified.returncode == 0, verified.stderr[-3000:]
    finally:
        client.images.get_by_id(result["snapshot_id"]).delete()


def test_growing_needs_a_snapshot_of_the_profile(cloud_unchanged):
    missing = invoke("build-snapshot", "--from", "987654321", "--force")
    assert missing.returncode == 1 and "snapshot '987654321' not found" in missing.stderr, missing.stderr[-2000:]
