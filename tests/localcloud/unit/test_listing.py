import pytest

from imagekit.host.keys import new_ed25519
from localcloud.api.listing import paginate, sort_items
from localcloud.api.validation import ssh_fingerprint
from localcloud.errors import APIError


def test_pagination_meta():
    items = [{"id": i} for i in range(1, 121)]
    page, meta = paginate(items, 3, 50)
    assert [i["id"] for i in page] == list(range(101, 121))
    assert meta["pagination"] == {"page": 3, "per_page": 50, "previous_page": 2, "next_page": None,
                                  "last_page": 3, "total_entries": 120}


def test_per_page_is_capped_at_50():
    _, meta = paginate([{"id": 1}], 1, 500)
    assert meta["pagination"]["per_page"] == 50


def test_sort_desc_and_invalid():
    items = [{"id": 2, "name": "b"}, {"id": 1, "name": "a"}, {"id": 3, "name": "c"}]
    assert [i["id"] for i in sort_items(items, ["name:desc"], ["id", "name"])] == [3, 2, 1]
    with pytest.raises(APIError):
        sort_items(items, ["nope"], ["id", "name"])


def test_fingerprint_matches_ssh_keygen_format(tmp_path):
    import subprocess

    key = new_ed25519()
    (tmp_path / "k.pub").write_text(key.public_openssh)
    out = subprocess.run(["ssh-keygen", "-l", "-E", "md5", "-f", str(tmp_path / "k.pub")], capture_output=True,
                         text=True, check=True).stdout
    assert ssh_fingerprint(key.public_openssh) == out.split()[1].removeprefix("MD5:")


def test_fingerprint_rejects_garbage():
    with pytest.raises(APIError):
        ssh_fingerprint("ssh-ed25519 not-base64!!")
