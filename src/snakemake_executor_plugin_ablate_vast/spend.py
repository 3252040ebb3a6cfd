"""The spending bound: what this run's instances have cost so far (their price x the time each
was held) and whether one more may be rented.

Docs: docs/profiles.md, "A spending bound". A job's forecast is its ``runtime`` resource, else
:data:`DEFAULT_FORECAST_H`; one running past it counts at what it has cost so far.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

DEFAULT_FORECAST_H = 1.0


@dataclass
class _Held:
    price_h: float  # USD per hour, storage included (the offer's dph_total)
    start: float
    forecast_h: float
    end: float | None = None


@dataclass
class SpendMeter:
    bound: float | None  # USD for the run; None: no bound
    clock: object = time.time
    held: dict[int, _Held] = field(default_factory=dict)

    def rented(self, instance: int, price_h: float, forecast_h: float) -> None:
        self.held[instance] = _Held(price_h, self.clock(), forecast_h)

    def ended(self, instance: int) -> None:
        h = self.held.get(instance)
        if h is not None and h.end is None:
            h.end = self.clock()

    def spent(self) -> float:
        now = self.clock()
        return sum(h.price_h * ((h.end or now) - h.start) / 3600 for h in self.held.values())

    def committed(self) -> float:
        """Spent, plus the running instances' forecast cost still to come."""
        now = self.clock()
        return sum(
            h.price_h * max((h.end or now) - h.start, 0 if h.end else h.forecast_h * 3600) / 3600
            for h in self.held.values()
        )

    def admits(self, price_h: float, forecast_h: float) -> bool:
        return self.bound is None or self.committed() + price_h * forecast_h <= self.bound

    def reached(self) -> bool:
        return self.bound is not None and self.spent() >= self.bound

    def running(self) -> int:
        return sum(h.end is None for h in self.held.values())

    def record(self) -> dict:
        return {
            "spent_usd": round(self.spent(), 4),
            "bound_usd": self.bound,
            "instances": len(self.held),
            "running": self.running(),
            "updated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }

    def message(self, why: str) -> str:
        bound = f"${self.bound:.2f}" if self.bound is not None else "none"
        return (
            f"spending bound: {why}; spent ${self.spent():.4f} of --ablate-vast-max-spend {bound} "
            f"on {len(self.held)} instance(s); renting nothing more, the run stops"
        )
