"""Day-ahead anchors kept by delivery period, handed to a product only when it trades.

A product's features need the day-ahead price of its delivery period (the anchor). A feed carries day-ahead
prices of every hour of every area it covers, years of them in a recorded feed, most of them for products that
never trade: building a feature state for each (five products an hour) cost 125 s, 439,190 states and a
3.2 GB snapshot for 87,838 prices of one untraded area. Instead the prices are kept here by
``(area, delivery start, duration)`` (a few bytes each) and a product's state, made at its first trade or book
update, is given the price that covers it then; a price arriving later goes to the products already made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wattflow.domain import NS_PER_MINUTE, Product


@dataclass
class DayAheadAnchors:
    """Day-ahead prices by ``(area, delivery_start_ns, duration_min)`` with their arrival rank (picklable)."""

    prices: dict[tuple[str, int, int], tuple[int, float]] = field(default_factory=dict)
    durations_min: set[int] = field(default_factory=set)
    arrivals: int = 0

    def add(self, area: str, delivery_start_ns: int, duration_min: int, price_eur_per_mwh: float) -> None:
        self.arrivals += 1
        self.prices[(area, delivery_start_ns, duration_min)] = (self.arrivals, price_eur_per_mwh)
        self.durations_min.add(duration_min)

    def price_of(self, product: Product) -> float | None:
        """The price of the latest-arrived period that covers ``product`` (a period at least as long, aligned in
        UTC), or None."""
        best: tuple[int, float] | None = None
        for duration in self.durations_min:
            if duration < product.duration_min:
                continue
            step = duration * NS_PER_MINUTE
            found = self.prices.get((product.area, product.delivery_start_ns - product.delivery_start_ns % step,
                                     duration))
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return None if best is None else best[1]

    def __len__(self) -> int:
        return len(self.prices)


def covered_periods(delivery_start_ns: int, duration_min: int,
                    product_durations_min: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(delivery_start_ns, duration_min)`` of every product a day-ahead period covers: each product duration no
    longer than the period, at each of its starts within it."""
    out = []
    for duration in product_durations_min:
        if duration <= duration_min:
            step = duration * NS_PER_MINUTE
            out += [(begin, duration) for begin in range(delivery_start_ns, delivery_start_ns + duration_min
                                                         * NS_PER_MINUTE, step)]
    return out
