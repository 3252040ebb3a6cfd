"""The bridge package's own function (ablate.bridge.hub_free): whether a config's bridge study needs
the hub (fast)."""

from __future__ import annotations

from helpers import bridge_config

from ablate import bridge


def test_only_embedded_data_and_models_are_hub_free():
    assert bridge.hub_free({"bridge": bridge_config()})  # config/config.yaml: all embedded
    assert not bridge.hub_free({"bridge": bridge_config("latentwire.yaml")})  # all from the hub
    for key, hub in (("data", "hub"), ("source", "pretrained"), ("target", "pretrained")):
        one = bridge_config()
        one[key]["source"] = hub  # one part from the hub is enough to need it
        assert not bridge.hub_free({"bridge": one}), key
