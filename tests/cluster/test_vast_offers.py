"""The Vast executor's offer pricing, credential forwarding and settings as plain units: no root,
no fake hosts (the runs through Snakemake are in test_vast.py and test_vast_unattended.py)."""

from __future__ import annotations

import dataclasses
import logging
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT

from snakemake_executor_plugin_ablate_vast.executor import (
    PLUGIN_NAME,
    Executor,
    ExecutorSettings,
    offer_price,
    settings_error,
)
from snakemake_executor_plugin_ablate_vast.spend import SpendMeter

UNPRICED = [None, 0, 0.0, -50, "n/a", float("nan")]


class FakeVast:
    """search_offers / create_instance as the SDK answers them (raw dicts)."""

    def __init__(self, offers):
        self.offers, self.created = offers, []

    def search_offers(self, **kwargs):
        return list(self.offers)

    def create_instance(self, **kwargs):
        self.created.append(kwargs["id"])
        return {"success": True, "new_contract": 100 + kwargs["id"]}


def metered_executor(offers, bound):
    ex = Executor.__new__(Executor)
    ex.vast, ex.settings = FakeVast(offers), ExecutorSettings(max_spend=bound)
    ex.spend, ex.logger = SpendMeter(bound), logging.getLogger("test_vast_offers")
    ex._write_spend = lambda: None  # no spend record in the working directory
    return ex


JOB = SimpleNamespace(name="finetune", resources={"runtime": 60})  # forecast: 1 h


@pytest.mark.parametrize("price", UNPRICED)
def test_offer_without_a_positive_price_has_none(price):
    assert offer_price({"id": 1, "dph_total": price}, None) is None
    assert offer_price({"id": 1}, None) is None  # dph_total missing
    assert offer_price({"id": 1, "dph_total": price}, 0.4) is None  # a bid offer too
    assert offer_price({"id": 1, "dph_total": 0.9}, 0.4) == 0.4  # a bid is the price paid


def test_unpriced_offers_are_refused_not_rented_free(caplog):
    """Null, missing, 0 and negative prices are skipped with a warning; the priced offer is the
    only one searched out and rented, at its price. Before, each counted as $0/h, and the -50
    one made the spend so far negative: a $50 job then fitted a $1 bound."""
    offers = [{"id": i, "dph_total": p} for i, p in enumerate(UNPRICED)]
    offers += [{"id": 10}, {"id": 11, "dph_total": 0.5}]
    ex = metered_executor(offers, bound=1.0)
    with ex._metered(JOB), caplog.at_level(logging.WARNING):
        found = ex.vast.search_offers(query="q")
        assert [o["id"] for o in found] == [11]
        ex.vast.create_instance(id=11)
    assert "7 Vast.ai offer(s) without a positive price skipped" in caplog.text
    assert ex.spend.committed() == pytest.approx(0.5)

    only_negative = metered_executor([{"id": 4, "dph_total": -50}], bound=1.0)
    with only_negative._metered(JOB):
        assert only_negative.vast.search_offers(query="q") == []
    assert only_negative.spend.held == {}


def test_credentials_stay_home_unless_the_profile_forwards_them(monkeypatch, tmp_path):
    """The instance's environment (the stock plugin's _container_env) with AWS keys and a Google
    credentials file in this shell: without forward-credentials none of them; Snakemake's own
    envvars go either way."""
    google = tmp_path / "credentials.json"
    google.write_text('{"project_id": "fake-project"}')
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(google))

    def instance_env(settings):
        ex = Executor.__new__(Executor)
        ex.settings, ex.envvars = settings, lambda: {"SNAKEMAKE_STORAGE_S3_SECRET_KEY": "s3"}
        return ex._container_env()

    assert instance_env(ExecutorSettings()) == {"SNAKEMAKE_STORAGE_S3_SECRET_KEY": "s3"}
    forwarded = instance_env(ExecutorSettings(forward_credentials=True))
    assert forwarded["AWS_SECRET_ACCESS_KEY"] == "fake-secret"
    assert forwarded["GOOGLE_CLOUD_PROJECT"] == "fake-project"  # read from the file
    assert forwarded["SNAKEMAKE_STORAGE_S3_SECRET_KEY"] == "s3"


def test_settings_that_cannot_work_are_one_line():
    assert settings_error(ExecutorSettings()) is None
    assert settings_error(ExecutorSettings(bid=-50.0)) == (
        "ablate-vast-bid -50.0: a bid is a price in USD per hour above 0"
    )
    assert "is above ablate-vast-max-price 3.0" in settings_error(
        ExecutorSettings(bid=4.0, max_price=3.0)
    )
    both = ExecutorSettings(forward_credentials=True, no_forward_credentials=True)
    assert settings_error(both).startswith(
        "ablate-vast-forward-credentials and ablate-vast-no-forward-credentials are both set"
    )


def test_vast_profile_shows_every_setting_the_executor_adds():
    """Each setting of this executor (beyond the stock plugin's) is in profiles/vast, set or
    commented out with what it does; credentials are not forwarded there."""
    import snakemake_executor_plugin_vastai as stock

    text = (ROOT / "profiles" / "vast" / "config.yaml").read_text()
    ours = {f.name for f in dataclasses.fields(ExecutorSettings)}
    ours -= {f.name for f in dataclasses.fields(stock.ExecutorSettings)}
    missing = [n for n in sorted(ours) if f"{PLUGIN_NAME}-{n.replace('_', '-')}:" not in text]
    assert not missing, missing
    assert yaml.safe_load(text)[f"{PLUGIN_NAME}-forward-credentials"] is False
