"""The images' Node.js major follows IMAGEKIT_NODE_MAJOR on the local cloud too: one build with 24 (not the
default 22) has the local cloud package Node.js 24 from the official binaries, installs it on the builder and
passes the image checks, which compare the installed node's major with the setting's. The setting's checks and
the packaging itself: unit/test_node_major.py and tests/localcloud/unit/test_node_package.py."""

from __future__ import annotations

import json

import pytest
from operator_cli import invoke

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # a build of its own, or a pool of hosts: minutes


def test_a_build_with_node_24_installs_node_24(cloud_unchanged):
    proc = invoke("build-snapshot", "--json", "--force", env_extra={"IMAGEKIT_NODE_MAJOR": "24"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    try:
        assert result["reused"] is False and result["expect"]["node_major"] == 24
        assert result["versions"]["node"].startswith("v24."), result["versions"]
        assert result["versions"]["nodejs"].startswith("24.") and result["versions"]["nodejs"].endswith("-1imagekit")
    finally:
        cloud_unchanged.images.get_by_id(result["snapshot_id"]).delete()
