"""The hub datasets the bridge study can load (ablate.bridge.hub), checked at parse time (fast)."""

from __future__ import annotations

import re

import pytest
from helpers import bridge_config

from ablate.bridge import grid
from ablate.core.config import ConfigError


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("path", "hot_pot_qa", "hotpotqa.path: 'hot_pot_qa' is not a known hub dataset id "
         "(did you mean 'hotpotqa/hotpot_qa'?)"),
        ("path", "hotpotqa/hotpotqa", "(did you mean 'hotpotqa/hotpot_qa'?)"),
        ("name", "distracter", "hotpotqa.name: 'hotpotqa/hotpot_qa' has no config 'distracter'"),
        ("test_split", "test", "hotpotqa.test_split: 'hotpotqa/hotpot_qa' (distractor) has no "
         "split 'test'"),
    ],
)  # fmt: skip
def test_hub_dataset_ids_are_checked_at_parse_time(key, value, message):
    bridge = bridge_config("latentwire.yaml")
    bridge["data"]["hotpotqa"][key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        grid.resolve(bridge)


def test_shipped_hub_datasets_are_known(tmp_path):
    from ablate.bridge import hub

    data = bridge_config("latentwire.yaml")["data"]
    paths = {data[k]["path"] for k in ("gsm8k", "hotpotqa")}
    assert paths <= {*hub.DATASETS, *hub.ALIASES}
    hub.check_data(data)
    local = {"path": str(tmp_path), "name": "x", "train_split": "a", "test_split": "b"}
    hub.check_dataset("bridge.data.gsm8k", local)  # a local directory is not checked
