"""--location as a list: the locations are checked with one listing and kept in the operator's order."""

from __future__ import annotations

import pytest

from imagekit.cloud import api as cloud_api
from imagekit.cloud import lookups
from imagekit.errors import CloudError


def test_locations_keep_their_order_and_none_means_the_apis_choice(api):
    client = cloud_api.connect(api.target)
    assert [loc.name for loc in lookups.locations(client, "hel1, fsn1,nbg1")] == ["hel1", "fsn1", "nbg1"]
    assert lookups.locations(client, None) == [None] and lookups.locations(client, " , ") == [None]


@pytest.mark.parametrize("spec, message", [("fsn1,mars1", "location 'mars1' does not exist; choose from: fsn1"),
                                           ("fsn1,nbg1,fsn1", "--location names fsn1 twice")])
def test_unknown_or_repeated_locations_are_refused(api, spec, message):
    with pytest.raises(CloudError, match=message):
        lookups.locations(cloud_api.connect(api.target), spec)
