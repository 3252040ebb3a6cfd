"""The planner's prices (ablate.core.planner.prices): a snapshot file, live Vast offers through the
vastai SDK (a fake Vast server here), the vast profile's price cap, interruptible bids, and a missing
price said, not invented."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from helpers import planner_config, row

from ablate.core import planner
from ablate.core.planner.inputs import Reference, Setup, parse_setups
from ablate.core.planner.prices import capture_offers, load_snapshot, snapshot_price, vast_profile


def test_missing_prices_are_reported_not_invented(tmp_path):
    snap = tmp_path / "offers.json"
    snap.write_text(
        json.dumps(
            {
                "captured_at": "2026-01-02",
                "source": "test",
                "offers": [{"gpu_name": "H200", "num_gpus": 1, "dph_total": 3.0}],
            }
        )
    )
    config = planner_config(
        "config.yaml",
        offers_snapshot=str(snap),
        setups=[
            {"gpu": "H200"},
            {"gpu": "L40S"},
            {"gpu": "cpu"},
            {"gpu": "RTX 4090", "price_per_hour": 0.5},
        ],
    )
    p = planner.make_plan(config, root=tmp_path, actuals=False)
    t = p.table
    l40s = t[t["setup"] == "1x L40S"]
    assert l40s["est_cost_usd"].isna().all() and l40s["price_per_hour"].isna().all()
    assert l40s["est_s"].notna().all()  # the time is still planned
    assert (l40s["price_source"].str.contains(f"no price: snapshot {snap}")).all()
    assert (l40s["price_source"].str.contains("has no offer for L40S")).all()
    assert row(t, "1x cpu", planner.TOTAL)["price_source"].startswith(
        "no price: 1x cpu is a local setup"
    )
    assert row(t, "1x H200", "finetune/3A")["price_per_hour"] == 3.0
    own = row(t, "1x RTX 4090", planner.TOTAL)
    assert own["price_source"] == "config: plan.setups price_per_hour"
    assert own["est_cost_usd"] == pytest.approx(own["est_s"] / 3600 * 0.5, abs=0.01)
    assert "missing price: no price: snapshot" in "\n".join(planner.summary_lines(p))
    # no snapshot file at all
    config["plan"]["offers_snapshot"] = str(tmp_path / "absent.json")
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert row(t, "1x H200", planner.TOTAL)["price_source"] == (
        f"no price: no offers snapshot file {tmp_path / 'absent.json'} and VAST_API_KEY is not set (live offers)"
    )
    assert pd.isna(row(t, "1x H200", planner.TOTAL)["est_cost_usd"])


class FakeVast(BaseHTTPRequestHandler):
    """POST /api/v0/bundles/ (search offers): offers by (gpu_name, num_gpus) from the query."""

    offers = {("H200", 1): [3.1, 2.9], ("H100 SXM", 8): [19.5]}
    calls: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeVast.calls.append((self.path, self.headers.get("Authorization"), body))
        if self.headers.get("Authorization") != "Bearer test-key":
            self.send_response(401)
            self.end_headers()
            return
        key = (body["gpu_name"]["eq"], int(body["num_gpus"]["eq"]))
        offers = [
            {"id": 500 + i, "gpu_name": key[0], "num_gpus": key[1], "dph_total": d}
            # interruptible offers: a minimum bid of a third of the on-demand price
            | ({"min_bid": round(d / 3, 4)} if body["type"] == "bid" else {})
            for i, d in enumerate(self.offers.get(key, []))
        ]
        data = json.dumps({"offers": offers}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_vast(monkeypatch):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeVast)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    FakeVast.calls = []
    monkeypatch.setenv("VAST_URL", f"http://127.0.0.1:{srv.server_address[1]}")
    monkeypatch.setenv("VAST_API_KEY", "test-key")
    yield srv
    srv.shutdown()
    srv.server_close()


def test_live_offers_through_the_vastai_sdk(fake_vast, tmp_path):
    config = planner_config(
        "config.yaml",
        prices="vast",
        setups=[{"gpu": "H200"}, {"gpu": "H100 SXM", "count": 8}, {"gpu": "RTX 4090"}],
    )
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    h200 = row(t, "1x H200", planner.TOTAL)
    assert h200["price_per_hour"] == 2.9  # the cheapest offer
    assert h200["price_source"].startswith("vast live") and "offer 501" in h200["price_source"]
    assert row(t, "8x H100 SXM", "finetune/3A")["price_per_hour"] == 19.5
    r4090 = row(t, "1x RTX 4090", planner.TOTAL)
    assert pd.isna(r4090["est_cost_usd"]) and r4090["price_source"].startswith(
        "no price: no live Vast offer"
    )
    # the query is the executor plugin's: verified datacenter hosts with reliability > 0.98
    path, auth, body = FakeVast.calls[0]
    assert path == "/api/v0/bundles/" and auth == "Bearer test-key"
    assert body["reliability"] == {"gt": "0.98"} and body["datacenter"] == {"eq": True}
    assert body["type"] == "on-demand" and body["order"] == [["dph_total", "asc"]]
    # ... with the vast profile's settings (profiles/vast/config.yaml: max_price 3.0, disk 80)
    assert body["dph_total"] == {"lte": "3"} and body["disk_space"] == {"gte": "80"}


def test_plans_on_a_host_without_the_vast_plugin(tmp_path, monkeypatch):
    """Found on the GPU smoke run: a host without snakemake-executor-plugin-vastai (a GPU box
    running the study locally) failed the whole plan; it plans, reading the profile unchecked."""
    import sys

    monkeypatch.setitem(sys.modules, "snakemake_executor_plugin_vastai", None)  # ImportError
    profile = tmp_path / "vast.yaml"
    profile.write_text("ablate-vast-max-price: 2.0\nablate-vast-api-key: never-read\n")
    config = planner_config("ministral3b.yaml", vast_profile=str(profile), setups=[{"gpu": "H200"}])
    assert vast_profile(config["plan"])["settings"] == {"max_price": 2.0}
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    assert "above max_price 2 $/h" in row(t, "1x H200", "finetune/3A")["price_source"]


def test_vast_profile_price_cap_and_instance_groups(tmp_path):
    profile = tmp_path / "vast.yaml"
    profile.write_text(
        "groups: {finetune: te, eval_model: te}\nablate-vast-max-price: 2.0\n"
        "ablate-vast-api-key: never-read\n"
    )
    config = planner_config(
        "ministral3b.yaml", vast_profile=str(profile), setups=[{"gpu": "H200"}, {"gpu": "H100 SXM"}]
    )
    vast = vast_profile(config["plan"])
    assert vast["settings"] == {"max_price": 2.0} and vast["groups"]["finetune"] == "te"
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    # H200 at 3.50 $/h is above the profile's cap: still priced, and the source says it
    assert "above max_price 2 $/h" in row(t, "1x H200", "finetune/3A")["price_source"]
    assert "above max_price" not in row(t, "1x H100 SXM", "finetune/3A")["price_source"]
    # a variant's evaluations run on its finetune's instance: no boot, no checkpoint upload
    ev, base = row(t, "1x H200", "eval/3A/causal"), row(t, "1x H200", "eval/base/causal")
    assert ev["rental_overhead_s"] == 0 and "instance of finetune/3A" in ev["note"]
    assert base["rental_overhead_s"] == 240 + 90  # boot + setup; the hub model downloads in the job
    config["plan"]["vast_profile"] = None
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    ckpt_in = 3.429006336e9 * 2 / 1e6 / 50
    assert row(t, "1x H200", "eval/3A/causal")["rental_overhead_s"] == pytest.approx(
        240 + 90 + ckpt_in, abs=0.1
    )


def test_live_search_failure_falls_back_to_the_snapshot_and_says_so(
    fake_vast, tmp_path, monkeypatch
):
    monkeypatch.setenv("VAST_API_KEY", "wrong-key")
    config = planner_config("config.yaml", setups=[{"gpu": "H200"}])  # prices: auto
    r = row(planner.make_plan(config, root=tmp_path, actuals=False).table, "1x H200", planner.TOTAL)
    assert r["price_per_hour"] == 3.5 and r["prices_captured_at"] == "2026-05"
    assert (
        "live Vast search failed" in r["price_source"]
        and "fell back to snapshot" in r["price_source"]
    )


def test_capture_offers_writes_a_loadable_snapshot(fake_vast, tmp_path):
    config = planner_config("config.yaml")
    ref = Reference.load(config["plan"]["measurements"])
    out = tmp_path / "snap.json"
    snap = capture_offers(parse_setups(config["plan"], ref), config["plan"], out)
    loaded = load_snapshot(out)
    assert {(o["gpu_name"], o["num_gpus"], o["dph_total"]) for o in loaded["offers"]} == {
        ("H200", 1, 2.9),
        ("H100 SXM", 8, 19.5),
    }
    assert any(m.startswith("1x H100 SXM") for m in snap["missing"])
    price = snapshot_price(Setup("H200"), loaded)
    assert price.per_hour == 2.9 and price.captured_at == snap["captured_at"]


def test_interruptible_live_price_is_the_lowest_min_bid(fake_vast, tmp_path):
    config = planner_config(
        "config.yaml", prices="vast", setups=[{"gpu": "H200", "interruptible": True}]
    )
    t = planner.make_plan(config, root=tmp_path, actuals=False).table
    total = row(t, "1x H200 bid", planner.TOTAL)
    assert total["price_per_hour"] == pytest.approx(2.9 / 3, abs=1e-4)
    assert "min_bid" in total["price_source"] and "bid offers" in total["price_source"]
    assert FakeVast.calls[0][2]["type"] == "bid"
