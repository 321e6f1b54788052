"""What the API offers of arm follows what the host runs (the API in process): arm types, their prices and the arm
``debian-12`` only where qemu-user works, that image built once at its first use, and an image of the other
architecture refused as Hetzner does."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from localcloud.engine import catalog
from localcloud.engine.architectures import BUILDING, OFFERED, READY, Architectures
from tests.localcloud.unit.test_api_input_checks import refused

ARM_TYPES = {"cax11", "cax21", "cax31", "cax41"}


def get(api, path: str) -> dict:
    r = requests.get(f"{api.base}/v1/{path}", headers=api.headers)
    assert r.status_code == 200, r.text
    return r.json()


def create(api, **body):
    return requests.post(f"{api.base}/v1/servers", headers=api.headers, json={"name": "arm", **body})


def test_cax_types_are_hetzners():
    shapes = {t["name"]: (t["id"], t["cores"], t["memory"], t["disk"], t["prices"][0]["price_monthly"]["net"])
              for t in catalog.SERVER_TYPES if t["architecture"] == "arm"}
    assert shapes == {"cax11": (45, 2, 4.0, 40, "3.7900"), "cax21": (93, 4, 8.0, 80, "6.4900"),
                      "cax31": (94, 8, 16.0, 160, "12.4900"), "cax41": (95, 16, 32.0, 320, "24.4900")}


def test_without_emulation_no_arm_type_or_image_is_offered_and_create_says_why(local_api):
    local_api.cloud.architectures = Architectures("binfmt_misc cannot be mounted")
    names = {t["name"] for t in get(local_api, "server_types")["server_types"]}
    assert names and not names & ARM_TYPES
    missing = requests.get(f"{local_api.base}/v1/server_types/45", headers=local_api.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    arm_ids = {t["id"] for t in catalog.SERVER_TYPES if t["architecture"] == "arm"}
    for dc in get(local_api, "datacenters")["datacenters"]:
        assert not set(dc["server_types"]["available"]) & arm_ids
    assert get(local_api, "images?name=debian-12&architecture=arm")["images"] == []
    assert not {t["name"] for t in get(local_api, "pricing")["pricing"]["server_types"]} & ARM_TYPES
    response = create(local_api, server_type="cax11", image="114690389")
    refused(response, "server_type")
    assert "binfmt_misc cannot be mounted" in response.json()["error"]["details"]["fields"][0]["messages"][0]


def test_the_arm_image_is_built_once_at_its_first_use_and_its_users_wait_for_it():
    calls, release = [], threading.Event()

    def build():
        calls.append(1)
        release.wait(5)

    arm = Architectures(None, build, built=False)
    assert arm.status()["arm"] == OFFERED and {i["architecture"] for i in arm.system_images()} == {"x86", "arm"}
    assert arm.prepare_arm()["arm"] == BUILDING
    waiter = threading.Thread(target=arm.ensure_arm_image)
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive() and arm.status()["arm"] == BUILDING
    release.set()
    waiter.join(5)
    assert arm.status() == {"x86": READY, "arm": READY, "arm_reason": None} and calls == [1]
    arm.ensure_arm_image()
    assert calls == [1]


def test_a_failed_build_says_why_and_the_next_use_tries_again():
    def broken():
        raise OSError("debootstrap failed")

    arm = Architectures(None, broken, built=False)
    with pytest.raises(OSError):
        arm.ensure_arm_image()
    assert arm.status()["arm"] == OFFERED and "debootstrap failed" in arm.status()["arm_reason"]
    with pytest.raises(OSError):
        arm.ensure_arm_image()


def test_one_name_one_image_per_architecture(local_api):
    images = get(local_api, "images?name=debian-12")["images"]
    assert {(i["id"], i["architecture"]) for i in images} == {(114690387, "x86"), (114690389, "arm")}
    (arm,) = get(local_api, "images?name=debian-12&architecture=arm")["images"]
    assert arm["id"] == 114690389 and arm["status"] == "available"


@pytest.mark.parametrize("server_type,image", [("cx23", "114690389"), ("cax11", "114690387"), ("cax11", "debian-12")])
def test_an_image_of_the_other_architecture_is_refused_as_hetzner_refuses_it(local_api, server_type, image):
    """By name a system image is its x86 one, as on Hetzner, so cax11 with "debian-12" is refused too."""
    response = create(local_api, server_type=server_type, image=image)
    refused(response, "image")
    assert response.json()["error"]["message"] == "image has incompatible architecture"
    assert get(local_api, "servers")["servers"] == []


def test_a_rebuild_onto_the_other_architecture_is_refused(local_api):
    server = create(local_api, server_type="cx23", image="debian-12", start_after_create=False).json()["server"]
    local_api.cloud.store["servers"][server["id"]]["status"] = "off"  # no machine in process: its create failed
    response = requests.post(f"{local_api.base}/v1/servers/{server['id']}/actions/rebuild", headers=local_api.headers,
                             json={"image": "114690389"})
    refused(response, "image")
