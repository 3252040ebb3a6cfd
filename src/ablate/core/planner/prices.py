"""Prices per setup: the user's own, live Vast offers (the executor plugin's query), the snapshot.

A setup without a price gets an empty cost and a ``price_source`` starting ``no price:`` that says
why; a missing key, an unreadable snapshot or a failed search is such a note, never an exception.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from ablate.core.outputs import io
from ablate.core.planner.inputs import PlanError, Setup, log


@dataclass
class Price:
    per_hour: float | None
    source: str
    captured_at: str | None


def load_snapshot(path: str | os.PathLike) -> dict[str, Any] | None:
    p = Path(path)
    if not p.exists():
        return None
    data = json.loads(p.read_text())
    for key in ("captured_at", "offers"):
        if key not in data:
            raise PlanError(f"offers snapshot {p} lacks {key!r}")
    for i, o in enumerate(data["offers"]):
        for key in ("gpu_name", "num_gpus", "dph_total"):
            if key not in o:
                raise PlanError(f"offers snapshot {p}: offers[{i}] lacks {key!r}")
    data["path"] = str(p)
    return data


def _bid_snapshot_price(
    setup: Setup, snap: dict[str, Any] | None, missing: str, ratio: float
) -> Price:
    """An interruptible setup's price in the snapshot: the ``min_bid`` its offer states, else
    the on-demand price x ``ratio`` (plan.interruptible.price_ratio)."""
    on_demand = snapshot_price(replace(setup, interruptible=False), snap, missing)
    if on_demand.per_hour is None:
        return on_demand
    bids = [
        o["min_bid"]
        for o in snap["offers"]
        if o["gpu_name"] == setup.gpu
        and int(o["num_gpus"]) == setup.count
        and o.get("min_bid") is not None
    ]
    if bids:
        source = f"{on_demand.source}; its min_bid (interruptible)"
        return Price(float(min(bids)), source, on_demand.captured_at)
    return Price(
        on_demand.per_hour * ratio,
        f"{on_demand.source}; x {ratio:g} for a bid (plan.interruptible.price_ratio: the "
        "snapshot states no min_bid)",
        on_demand.captured_at,
    )


def snapshot_price(setup: Setup, snap: dict[str, Any] | None, missing: str = "") -> Price:
    """The setup's price in the snapshot; ``missing`` says why there is none when ``snap`` is None."""
    if snap is None:
        return Price(None, missing or "no price: no offers snapshot", None)
    where = f"snapshot {snap['path']} ({snap['captured_at']}; {snap.get('source', 'source not stated')})"
    offers = [o for o in snap["offers"] if o["gpu_name"] == setup.gpu]
    if not offers:
        return Price(None, f"no price: {where} has no offer for {setup.gpu}", snap["captured_at"])
    exact = [o for o in offers if int(o["num_gpus"]) == setup.count]
    if exact:
        o = min(exact, key=lambda o: o["dph_total"])
        per_hour, what = float(o["dph_total"]), f"{setup.label} offer"
    else:  # a per-GPU rate times the count: Vast bundles price roughly linearly in GPUs
        o = min(offers, key=lambda o: o["dph_total"] / int(o["num_gpus"]))
        per_gpu = o["dph_total"] / int(o["num_gpus"])
        per_hour = per_gpu * setup.count
        n = setup.count
        what = f"per-GPU rate {per_gpu:g} $/h x {n} (no {n}-GPU offer in the snapshot)"
    note = f"; {o['note']}" if o.get("note") else ""
    return Price(per_hour, f"{where}: {what}{note}", snap["captured_at"])


_VAST_PROFILE_PREFIXES = ("ablate-vast-", "vastai-")


def vast_profile(plan: dict[str, Any]) -> dict[str, Any]:
    """The vast profile's executor settings, groups, source and ``ablate-vast-bid``, its settings
    overlaid with ``plan.vast``: the planner prices the instance that profile would rent."""
    try:
        from snakemake_executor_plugin_vastai import ExecutorSettings

        fields = set(ExecutorSettings.__dataclass_fields__)
    except ImportError:  # a GPU host without the Vast plugin still plans (profile keys unchecked)
        log.warning("planner: snakemake-executor-plugin-vastai is not installed")
        fields = None
    path = Path(plan["vast_profile"]) if plan.get("vast_profile") else None
    settings, groups, source, bid = {}, {}, "plan.vast", None
    prof = None
    if path is not None and path.exists():
        try:
            prof = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:  # priced without the profile's filters
            log.warning("planner: vast profile %s unreadable: %s", path, exc)
    if isinstance(prof, dict):
        for key, value in prof.items():
            for prefix in _VAST_PROFILE_PREFIXES:
                name = key[len(prefix) :].replace("-", "_") if key.startswith(prefix) else None
                if name == "bid":  # ablate-vast's own setting, not the stock plugin's
                    bid = value
                elif name and (fields is None or name in fields) and name != "api_key":
                    settings[name] = value
        groups = prof.get("groups") or {}
        source = f"{path} + plan.vast"
    settings.update(plan.get("vast") or {})
    return {"settings": settings, "groups": groups, "source": source, "bid": bid}


def _live_prices(setups: list[Setup], vast_settings: dict[str, Any]) -> dict[Setup, Price]:
    """Cheapest on-demand Vast offer per setup (an interruptible one: the lowest ``min_bid``), by
    the executor plugin's own query: the price of the instance the pipeline would rent."""
    from snakemake_executor_plugin_vastai import ExecutorSettings, build_offer_query
    from vastai import VastAI

    settings = ExecutorSettings(**vast_settings)
    client = VastAI(
        api_key=os.environ["VAST_API_KEY"], server_url=os.environ.get("VAST_URL"), retry=1
    )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    out: dict[Setup, Price] = {}
    for s in setups:
        if s.local:
            continue
        query = build_offer_query(settings, {"gpu": s.count, "gpu_model": s.gpu}, 0)
        kind, key = ("bid", "min_bid") if s.interruptible else ("on-demand", "dph_total")
        what = "bid offer" if s.interruptible else "offer"
        try:
            offers = client.search_offers(
                query=query, type=kind, order=settings.order, limit=20, storage=settings.disk
            )
        except Exception as exc:  # network, auth, API errors: say so in price_source
            out[s] = Price(
                None, f"no price: live Vast search failed ({type(exc).__name__}: {exc})", now
            )
            continue
        offers = [o for o in offers or [] if o.get(key) is not None]
        if not offers:
            out[s] = Price(None, f"no price: no live Vast {what} matches '{query}'", now)
            continue
        o = min(offers, key=lambda o: o[key])
        out[s] = Price(
            float(o[key]),
            f"vast live {now}: cheapest {'min_bid ' if s.interruptible else ''}of "
            f"{len(offers)} {what}s for '{query}' (offer {o.get('id')})",
            now,
        )
    return out


def _snapshot(plan: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The offers snapshot, or None and why not (absent, or unreadable: a warning in the log)."""
    path = plan["offers_snapshot"]
    try:
        return load_snapshot(path), f"no price: no offers snapshot file {path}"
    except (PlanError, OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("planner: offers snapshot unreadable: %s", exc)
        return None, f"no price: offers snapshot {path} unreadable ({exc})"


def resolve_prices(setups: list[Setup], plan: dict[str, Any]) -> dict[Setup, Price]:
    """Per setup: the user's own price, else live offers (if a key is set), else the snapshot."""
    mode = plan["prices"]
    snap, no_snap = _snapshot(plan) if mode in ("auto", "snapshot") else (None, "")
    vast = vast_profile(plan)
    live: dict[Setup, Price] = {}
    rented = [s for s in setups if s.price_per_hour is None and not s.local]
    if mode == "vast" and not os.environ.get("VAST_API_KEY"):
        why = "no price: plan.prices is 'vast' but VAST_API_KEY is not set"
        log.warning("planner: %s", why)
        live = {s: Price(None, why, None) for s in rented}
    elif mode == "vast" or (mode == "auto" and os.environ.get("VAST_API_KEY")):
        live = _live_prices(rented, vast["settings"])

    def from_snapshot(s: Setup) -> Price:
        if s.interruptible:
            return _bid_snapshot_price(s, snap, no_snap, plan["interruptible"]["price_ratio"])
        return snapshot_price(s, snap, no_snap)

    out = {}
    for s in setups:
        if s.price_per_hour is not None:
            out[s] = Price(float(s.price_per_hour), "config: plan.setups price_per_hour", None)
        elif s.local:
            out[s] = Price(
                None, f"no price: {s.label} is a local setup, not rented (set price_per_hour)", None
            )
        elif s.interruptible and vast["bid"] is not None:  # the executor rents at its bid
            out[s] = Price(
                float(vast["bid"]), f"the bid of ablate-vast-bid ({vast['source']})", None
            )
        elif s in live and (live[s].per_hour is not None or mode != "auto"):
            out[s] = live[s]
        elif s in live:  # no live price in auto mode
            fallback = from_snapshot(s)
            fallback.source = f"{live[s].source}; fell back to {fallback.source}"
            out[s] = fallback
        else:
            out[s] = from_snapshot(s)
            if snap is None and mode == "auto":
                out[s].source += " and VAST_API_KEY is not set (live offers)"
        cap, price = vast["settings"].get("max_price"), out[s]
        if not s.local and cap is not None and price.per_hour is not None and price.per_hour > cap:
            why = "the executor would not rent it"
            price.source += f"; above max_price {cap:g} $/h ({vast['source']}): {why}"
    return out


def capture_offers(setups: list[Setup], plan: dict[str, Any], path: str | os.PathLike) -> dict:
    """Write a fresh offers snapshot of live offers, for offline planning."""
    if not os.environ.get("VAST_API_KEY"):
        raise PlanError("--capture-offers needs VAST_API_KEY (live Vast offers)")
    shapes = list(dict.fromkeys(replace(s, interruptible=False) for s in setups))
    bids = [replace(s, interruptible=True) for s in shapes]
    prices = _live_prices(shapes + bids, vast_profile(plan)["settings"])
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    offers = []
    for s, b in zip(shapes, bids, strict=True):
        p, pb = prices.get(s), prices.get(b)
        if p is None or p.per_hour is None:
            continue
        offers.append(
            {"gpu_name": s.gpu, "num_gpus": s.count, "dph_total": p.per_hour, "note": p.source}
        )
        if pb is not None and pb.per_hour is not None:
            offers[-1] |= {"min_bid": pb.per_hour, "bid_note": pb.source}
    snap = {
        "captured_at": now,
        "method": "ablate plan --capture-offers: cheapest on-demand offer and lowest min_bid "
        "per setup",
        "source": os.environ.get("VAST_URL") or "https://console.vast.ai",
        "offers": offers,
        "missing": [f"{s.label}: {p.source}" for s, p in prices.items() if p.per_hour is None],
    }
    io.write_json(path, snap)
    return snap
