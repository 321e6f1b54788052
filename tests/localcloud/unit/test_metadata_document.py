"""What the metadata service and a guest's boot arguments say about a server, in Hetzner's shapes (issue 26)."""

from __future__ import annotations

import base64
import subprocess

import yaml

from localcloud.metadata import bootargs, document

SERVER = {"id": 1000042, "name": "web-1", "instance": "abc", "location": "fsn1", "address": "10.213.7.12",
          "ipv6": "fd12:3456:789a:5::/64", "ssh_keys": ["ssh-ed25519 AAAA k"], "user_data": "#cloud-config\n{}\n",
          "private_net": [{"ip": "10.0.0.2", "alias_ips": [], "interface_num": 1, "mac_address": "86:00:00:2a:7d:e0",
                           "network_id": 1234, "network_name": "nw", "network": "10.0.0.0/8",
                           "subnet": "10.0.0.0/24", "gateway": "10.0.0.1", "internal": "not shown"}]}
ZONE = ("fsn1-dc14", "eu-central")


def test_the_metadata_document_has_hetzners_keys_and_network_config():
    md = yaml.safe_load(document.answer(SERVER, ZONE, "/hetzner/v1/metadata"))
    assert {"hostname", "instance-id", "public-ipv4", "public-keys", "vendor_data", "network-config",
            "availability-zone", "region"} <= set(md)
    assert md["instance-id"] == 1000042 and md["public-ipv4"] == "10.213.7.12"
    assert md["availability-zone"] == "fsn1-dc14" and md["region"] == "eu-central"
    [eth0] = md["network-config"]["config"]
    assert eth0["subnets"][0]["type"] == "dhcp"
    assert eth0["subnets"][1] == {"address": "fd12:3456:789a:5::1/64", "gateway": "fe80::1", "ipv6": True,
                                  "type": "static"}


def test_single_keys_are_plain_text_lists_yaml_and_unknown_keys_absent():
    assert document.answer(SERVER, ZONE, "/hetzner/v1/metadata/instance-id") == "1000042"
    assert document.answer(SERVER, ZONE, "/hetzner/v1/metadata/hostname") == "web-1"
    assert yaml.safe_load(document.answer(SERVER, ZONE, "/hetzner/v1/metadata/public-keys")) == SERVER["ssh_keys"]
    assert document.answer(SERVER, ZONE, "/hetzner/v1/metadata/nope") is None
    assert document.answer(SERVER, ZONE, "/etc/passwd") is None
    assert document.answer(SERVER, ZONE, "/hetzner/v1/userdata") == SERVER["user_data"]


def test_private_networks_come_from_the_servers_attachments():
    [net] = yaml.safe_load(document.answer(SERVER, ZONE, "/hetzner/v1/metadata/private-networks"))
    assert net["network_id"] == 1234 and net["gateway"] == "10.0.0.1" and "internal" not in net
    assert yaml.safe_load(document.answer({**SERVER, "private_net": []}, ZONE,
                                          "/hetzner/v1/metadata/private-networks")) == []


def test_an_ipv6_only_server_has_no_public_ipv4_and_a_server_without_ipv6_no_static_subnet():
    md = yaml.safe_load(document.answer({**SERVER, "address": None}, ZONE, "/hetzner/v1/metadata"))
    assert md["public-ipv4"] == ""
    config = document.network_config({**SERVER, "ipv6": None}, "eth0")
    assert [s["type"] for s in config["config"][0]["subnets"]] == ["dhcp"]


def test_the_nocloud_seed_changes_its_instance_id_with_each_rebuild():
    meta = yaml.safe_load(document.answer(SERVER, ZONE, "/localcloud/nocloud/meta-data"))
    assert meta == {"instance-id": "i-1000042-abc", "local-hostname": "web-1", "public-keys": SERVER["ssh_keys"]}
    assert document.answer(SERVER, ZONE, "/localcloud/nocloud/user-data") == SERVER["user_data"]


def test_boot_args_point_cloud_init_at_the_service_and_carry_the_network_config():
    ds, network, cloud_config = bootargs.boot_args(SERVER)
    assert yaml.safe_load(cloud_config.removeprefix("cc:").removesuffix(" end_cc")) == {
        "disable_network_activation": True, "datasource": {"NoCloud": {"fs_label": None}}}
    assert ds == "ds=nocloud-net;s=http://169.254.169.254/localcloud/nocloud/"
    config = yaml.safe_load(base64.b64decode(network.removeprefix("network-config=")))
    assert config == document.network_config(SERVER, "host0*")


def test_only_an_ipv6_only_server_gets_vendor_data_pointing_apt_at_the_bridges_ipv6_address(tmp_path):
    assert document.answer(SERVER, ZONE, "/localcloud/nocloud/vendor-data") == ""
    v6_only = {**SERVER, "address": None}
    vendor = document.answer(v6_only, ZONE, "/localcloud/nocloud/vendor-data")
    assert vendor.startswith("#cloud-config\n")
    command, sources = yaml.safe_load(vendor)["bootcmd"]
    assert command[:2] == ["sh", "-c"] and command[2].endswith(f"> {document.MIRROR6_CONF}")
    assert f'Proxy "http://[{document.HOST_ADDRESS6}]:{document.MIRROR_PORT}";' in command[2]
    assert f'Proxy::{document.HOST_ADDRESS6} "DIRECT";' in command[2]
    listed = tmp_path / "etc/apt/sources.list.d"
    listed.mkdir(parents=True)
    (listed / "standin.list").write_text(f"deb [trusted=yes] http://{document.HOST_ADDRESS}:8931/apt ./\n")
    (listed / "other.list").write_text("deb http://10.2.3.4:8931/apt ./\n")
    subprocess.run(["sh", "-c", sources[2].replace("/etc/apt", str(tmp_path / "etc/apt"))], check=True)
    assert (listed / "standin.list").read_text() == f"deb [trusted=yes] http://[{document.HOST_ADDRESS6}]:8931/apt ./\n"
    assert (listed / "other.list").read_text() == "deb http://10.2.3.4:8931/apt ./\n"
    assert yaml.safe_load(document.answer(v6_only, ZONE, "/hetzner/v1/metadata"))["vendor_data"] == vendor
