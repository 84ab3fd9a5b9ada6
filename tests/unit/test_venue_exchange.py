"""The paper exchange: idempotent ids, depth-limited fills, IOC/FOK, gate closure, passive queue, cancels."""

from __future__ import annotations

from datetime import UTC, datetime

from paper.exchange import ExecType, Liquidity, OrderStatus, PaperExchange, Reason
from paper.handmade import BookEvent, TradeEvent, handmade_feed
from paper.simulator import simulate_day
from wattflow.domain import NS_PER_SECOND, Product, Side, datetime_to_ns

KEY = "DE-LU:2018-10-28T12:00Z:PT60M"
T0 = datetime_to_ns(datetime(2018, 10, 28, 10, 0, tzinfo=UTC))
CLOSE = Product.parse(KEY).trading_window().local_close_ns
S = NS_PER_SECOND


def book_feed(*extra: BookEvent | TradeEvent) -> PaperExchange:
    """Bids 49.50 x 2 / 49.00 x 3, asks 50.00 x 1.5 / 50.50 x 2 / 51.00 x 4, then ``extra``."""
    events: list[BookEvent | TradeEvent] = [
        BookEvent(T0, KEY, Side.BUY, 0, 49.5, 2.0), BookEvent(T0, KEY, Side.BUY, 1, 49.0, 3.0),
        BookEvent(T0, KEY, Side.SELL, 0, 50.0, 1.5), BookEvent(T0, KEY, Side.SELL, 1, 50.5, 2.0),
        BookEvent(T0, KEY, Side.SELL, 2, 51.0, 4.0), *extra,
    ]
    exchange = PaperExchange(handmade_feed(events))
    exchange.advance_to(T0)
    return exchange


def test_marketable_buy_walks_the_book_and_never_takes_more_than_shown() -> None:
    ex = book_feed()
    report = ex.submit("a", KEY, "BUY", 50.5, 5.0, "IOC")
    assert report.status is OrderStatus.CANCELLED and report.reason is Reason.IOC_REMAINDER
    assert [(f.price_eur_per_mwh, f.quantity_mw) for f in ex.fills()] == [(50.0, 1.5), (50.5, 2.0)]
    assert report.filled_quantity_mw == 3.5 and report.avg_price_eur_per_mwh is not None
    assert abs(report.avg_price_eur_per_mwh - (50.0 * 1.5 + 50.5 * 2) / 3.5) < 1e-6
    assert [e.kind for e in report.executions] == [ExecType.ACK, ExecType.FILL, ExecType.FILL, ExecType.CANCEL]
    # The depth we took is gone until the feed sets those levels again.
    assert ex.book(KEY).asks == ((51.0, 4.0),)
    again = ex.submit("b", KEY, Side.BUY, 50.5, 1.0, "IOC")
    assert again.filled_quantity_mw == 0 and len(ex.fills()) == 2
    assert all(f.liquidity is Liquidity.TAKER for f in ex.fills())


def test_fok_fills_all_or_nothing() -> None:
    ex = book_feed()
    killed = ex.submit("f1", KEY, "BUY", 50.5, 3.6, "FOK")
    assert killed.status is OrderStatus.CANCELLED and killed.reason is Reason.FOK_NOT_FILLED
    assert ex.fills() == [] and ex.book(KEY).asks[0] == (50.0, 1.5)
    done = ex.submit("f2", KEY, "BUY", 50.5, 3.5, "FOK")
    assert done.status is OrderStatus.FILLED and done.filled_quantity_mw == 3.5


def test_sell_side_and_negative_prices() -> None:
    events = [BookEvent(T0, KEY, Side.BUY, 0, -5.25, 1.0), BookEvent(T0, KEY, Side.BUY, 1, -20.0, 2.0),
              BookEvent(T0, KEY, Side.SELL, 0, -1.0, 1.0)]
    ex = PaperExchange(handmade_feed(events))
    ex.advance_to(T0)
    report = ex.submit("s", KEY, "SELL", -10.0, 2.0, "GTC")
    assert [(f.price_eur_per_mwh, f.quantity_mw) for f in ex.fills()] == [(-5.25, 1.0)]
    assert report.status is OrderStatus.PARTIALLY_FILLED and report.leaves_quantity_mw == 1.0
    assert [o.client_order_id for o in ex.open_orders()] == ["s"]
    assert ex.open_orders()[0].price_eur_per_mwh == -10.0


def test_idempotent_client_order_id() -> None:
    ex = book_feed()
    first = ex.submit("x", KEY, "BUY", 49.8, 1.0)
    assert first.status is OrderStatus.NEW and not first.replayed
    second = ex.submit("x", KEY, "BUY", 49.8, 1.0)
    assert second.replayed and second.order_id == first.order_id and second.executions == ()
    assert len(ex.open_orders()) == 1
    dup = ex.submit("x", KEY, "BUY", 49.9, 1.0)
    assert dup.status is OrderStatus.REJECTED and dup.reason is Reason.DUPLICATE_CLIENT_ORDER_ID
    assert ex.order("x").price_eur_per_mwh == 49.8 and len(ex.open_orders()) == 1
    # A rejected order is remembered too: the retry gets the same reject, not a new order.
    bad = ex.submit("y", KEY, "BUY", 49.801, 1.0)
    assert bad.reason is Reason.INVALID_PRICE_TICK
    assert ex.submit("y", KEY, "BUY", 49.801, 1.0).replayed


def test_validation_reason_codes() -> None:
    ex = book_feed()
    cases = {
        ("q", KEY, "BUY", 50.0, 1.05, "GTC"): Reason.INVALID_QUANTITY_STEP,
        ("q0", KEY, "BUY", 50.0, 0.0, "GTC"): Reason.INVALID_QUANTITY,
        ("big", KEY, "BUY", 50.0, 10_000.0, "GTC"): Reason.INVALID_QUANTITY,
        ("p", KEY, "BUY", 10_000.0, 1.0, "GTC"): Reason.PRICE_OUT_OF_RANGE,
        ("side", KEY, "UP", 50.0, 1.0, "GTC"): Reason.INVALID_SIDE,
        ("tif", KEY, "BUY", 50.0, 1.0, "DAY"): Reason.INVALID_TIF,
        ("prod", "XX:nonsense", "BUY", 50.0, 1.0, "GTC"): Reason.UNKNOWN_PRODUCT,
        ("", KEY, "BUY", 50.0, 1.0, "GTC"): Reason.INVALID_CLIENT_ORDER_ID,
    }
    for (cid, product, side, price, qty, tif), reason in cases.items():
        report = ex.submit(cid, product, side, price, qty, tif)
        assert report.status is OrderStatus.REJECTED and report.reason is reason, (cid, report.reason)
    assert ex.fills() == [] and ex.open_orders() == []
    assert all(r.kind is ExecType.REJECT for r in ex.reports)


def test_gate_closure_rejects_and_cancels_resting_orders() -> None:
    ex = book_feed()
    resting = ex.submit("r", KEY, "BUY", 45.0, 1.0)
    assert resting.is_open
    reports = ex.advance_to(CLOSE)
    assert [(r.kind, r.reason) for r in reports] == [(ExecType.CANCEL, Reason.GATE_CLOSED)]
    assert ex.open_orders() == []
    late = ex.submit("late", KEY, "BUY", 50.0, 1.0, now_ns=CLOSE + S)
    assert late.reason is Reason.GATE_CLOSED
    opening = Product.parse(KEY).trading_window().open_ns
    early = PaperExchange(handmade_feed([BookEvent(opening - 10 * S, KEY, Side.BUY, 0, 1.0, 1.0)]))
    assert early.submit("e", KEY, "BUY", 1.0, 1.0, now_ns=opening - S).reason is Reason.NOT_OPEN


def test_passive_order_waits_for_the_queue_ahead() -> None:
    # We join the 49.50 bid behind 2.0 MW; sellers hit 49.50 for 1.5, then 1.0, then 3.0.
    ex = book_feed(TradeEvent(T0 + 10 * S, KEY, Side.SELL, 49.5, 1.5),
                   TradeEvent(T0 + 20 * S, KEY, Side.SELL, 49.5, 1.0),
                   TradeEvent(T0 + 25 * S, KEY, Side.BUY, 49.5, 5.0),  # a buyer lifting: not our side
                   TradeEvent(T0 + 30 * S, KEY, Side.SELL, 49.5, 3.0))
    report = ex.submit("p", KEY, "BUY", 49.5, 2.0)
    assert report.status is OrderStatus.NEW
    ex.advance_to(T0 + 10 * S)
    assert ex.fills() == []  # 0.5 still ahead
    ex.advance_to(T0 + 20 * S)
    assert [(f.quantity_mw, f.price_eur_per_mwh) for f in ex.fills()] == [(0.5, 49.5)]
    ex.advance_to(T0 + 25 * S)
    assert len(ex.fills()) == 1
    ex.advance_to(T0 + 30 * S)
    assert [f.quantity_mw for f in ex.fills()] == [0.5, 1.5]
    assert ex.order("p").status is OrderStatus.FILLED
    assert all(f.liquidity is Liquidity.MAKER for f in ex.fills())


def test_trade_through_fills_up_to_the_trade_quantity_in_priority() -> None:
    ex = book_feed(TradeEvent(T0 + 5 * S, KEY, Side.SELL, 48.0, 1.2))
    ex.submit("low", KEY, "BUY", 48.5, 1.0)
    ex.submit("high", KEY, "BUY", 49.2, 1.0)
    ex.advance_to(T0 + 5 * S)
    fills = [(f.client_order_id, f.quantity_mw, f.price_eur_per_mwh) for f in ex.fills()]
    assert fills == [("high", 1.0, 49.2), ("low", 0.2, 48.5)]


def test_cancel_and_cancel_all() -> None:
    other = "DE-LU:2018-10-28T13:00Z:PT60M"
    ex = book_feed()
    for cid, key in (("a", KEY), ("b", KEY), ("c", other)):
        ex.submit(cid, key, "BUY", 40.0, 1.0)
    cancelled = ex.cancel("a")
    assert cancelled.status is OrderStatus.CANCELLED and cancelled.reason is Reason.CANCELLED_BY_CLIENT
    assert ex.cancel("a").replayed  # cancelling twice changes nothing
    assert [r.client_order_id for r in ex.cancel_all(product=other)] == ["c"]
    assert [r.client_order_id for r in ex.open_orders()] == ["b"]
    assert [r.client_order_id for r in ex.cancel_all()] == ["b"]
    assert ex.open_orders() == []
    try:
        ex.cancel("nope")
    except KeyError:
        pass
    else:
        raise AssertionError("unknown id must raise")


def test_simulated_day_fills_stay_within_shown_depth() -> None:
    feed = simulate_day(scale=0.05, durations_min=(60,))
    ex = PaperExchange(feed)
    product = feed.products()[12]
    window = Product.parse(product).trading_window()
    mid = (window.open_ns + window.local_close_ns) // 2
    ex.advance_to(mid)
    book = ex.book(product)
    if not book.asks:
        return
    shown = sum(q for _, q in book.asks)
    top = max(p for p, _ in book.asks)
    report = ex.submit("sim", product, "BUY", top, 9999.9, "IOC")
    assert abs(report.filled_quantity_mw - shown) < 1e-9
    assert ex.book(product).asks == ()
    # Play the rest of the day: a resting order fills at most its quantity, and is gone at gate closure.
    ex.submit("rest", product, "SELL", book.bids[0][0] if book.bids else 50.0, 5.0)
    ex.advance_to(window.local_close_ns)
    assert ex.order("rest").filled_quantity_mw <= 5.0
    assert ex.open_orders() == []


# --- iceberg orders ------------------------------------------------------------------------------


def fills_of(ex: PaperExchange) -> list[tuple[str, float]]:
    return [(f.client_order_id, f.quantity_mw) for f in ex.fills()]


def test_iceberg_aggressive_part_takes_the_full_quantity_and_the_rest_rests() -> None:
    ex = book_feed()
    report = ex.submit("ice", KEY, "BUY", 50.5, 4.0, display_quantity_mw=0.5)
    assert [(f.price_eur_per_mwh, f.quantity_mw, f.liquidity) for f in ex.fills()] == [
        (50.0, 1.5, Liquidity.TAKER), (50.5, 2.0, Liquidity.TAKER)]  # hidden quantity takes liquidity too
    assert report.status is OrderStatus.PARTIALLY_FILLED and report.leaves_quantity_mw == 0.5
    assert report.display_quantity_mw == 0.5 and ex.open_orders()[0].display_quantity_mw == 0.5
    assert ex.submit("plain", KEY, "BUY", 40.0, 1.0).display_quantity_mw is None


def test_iceberg_trade_larger_than_the_clip_fills_only_the_clip() -> None:
    # Nothing of the feed at 49.20: no queue ahead. A seller hits 49.20 for 2.5 twice.
    ex = book_feed(TradeEvent(T0 + 10 * S, KEY, Side.SELL, 49.2, 2.5),
                   TradeEvent(T0 + 20 * S, KEY, Side.SELL, 49.2, 2.5))
    ex.submit("ice", KEY, "BUY", 49.2, 3.0, display_quantity_mw=1.0)
    ex.advance_to(T0 + 10 * S)
    assert fills_of(ex) == [("ice", 1.0)]  # one clip per trade, not the trade's 2.5
    assert ex.order("ice").status is OrderStatus.PARTIALLY_FILLED
    # The clip refilled before this plain order arrived, so it comes first; the rest of the trade goes to the
    # order behind it (the clip again takes only 1.0 of the 2.5).
    ex.submit("plain", KEY, "BUY", 49.2, 2.0)
    ex.advance_to(T0 + 20 * S)
    assert fills_of(ex) == [("ice", 1.0), ("ice", 1.0), ("plain", 1.5)]
    assert ex.order("ice").leaves_quantity_mw == 1.0


def test_iceberg_refill_goes_to_the_back_of_the_queue_with_a_new_queue_ahead() -> None:
    # We join the 49.50 bid behind 2.0 MW: the iceberg (clip 0.5) first, then a plain order. The feed then
    # shows 1.2 MW at 49.50, and sellers hit 49.50 for 2.5, 1.0, 0.5, 1.0.
    ex = book_feed(BookEvent(T0 + 5 * S, KEY, Side.BUY, 0, 49.5, 1.2),
                   TradeEvent(T0 + 10 * S, KEY, Side.SELL, 49.5, 2.5),
                   TradeEvent(T0 + 20 * S, KEY, Side.SELL, 49.5, 1.0),
                   TradeEvent(T0 + 30 * S, KEY, Side.SELL, 49.5, 0.5),
                   TradeEvent(T0 + 40 * S, KEY, Side.SELL, 49.5, 1.0))
    ex.submit("ice", KEY, "BUY", 49.5, 2.0, display_quantity_mw=0.5)
    ex.submit("p", KEY, "BUY", 49.5, 1.0)
    ex.advance_to(T0 + 10 * S)  # 2.0 ahead worked off; the clip fills 0.5, the plain order 0.5
    assert fills_of(ex) == [("ice", 0.5), ("p", 0.5)]
    # The new clip is behind the plain order and behind the 1.2 MW the feed shows now: the next 1.0 fills
    # the plain order and only works off the iceberg's new queue (0.2 left ahead of it).
    ex.advance_to(T0 + 20 * S)
    assert fills_of(ex)[2:] == [("p", 0.5)]
    ex.advance_to(T0 + 30 * S)
    assert fills_of(ex)[3:] == [("ice", 0.3)]
    ex.advance_to(T0 + 40 * S)  # 0.2 of the clip left: the trade fills that, then the clip refills
    assert fills_of(ex)[4:] == [("ice", 0.2)]
    assert ex.order("ice").leaves_quantity_mw == 1.0 and ex.order("ice").is_open
    assert all(f.liquidity is Liquidity.MAKER and f.price_eur_per_mwh == 49.5 for f in ex.fills())


def test_iceberg_fills_never_exceed_its_quantity() -> None:
    trades = [TradeEvent(T0 + i * S, KEY, Side.SELL, 48.0, 5.0) for i in (10, 20, 30, 40)]
    ex = book_feed(*trades)
    ex.submit("ice", KEY, "BUY", 49.2, 1.0, display_quantity_mw=0.4)
    ex.advance_to(T0 + 40 * S)
    assert fills_of(ex) == [("ice", 0.4), ("ice", 0.4), ("ice", 0.2)]  # through trades: a clip each, last one short
    final = ex.order("ice")
    assert final.status is OrderStatus.FILLED and final.filled_quantity_mw == 1.0 and final.leaves_quantity_mw == 0
    assert ex.open_orders() == []


def test_iceberg_validation_reason_codes() -> None:
    ex = book_feed()
    cases: dict[tuple[str, float, str, object], Reason] = {
        ("zero", 2.0, "GTC", 0.0): Reason.INVALID_DISPLAY_QUANTITY,
        ("neg", 2.0, "GTC", -0.5): Reason.INVALID_DISPLAY_QUANTITY,
        ("all", 2.0, "GTC", 2.0): Reason.INVALID_DISPLAY_QUANTITY,
        ("more", 2.0, "GTC", 2.5): Reason.INVALID_DISPLAY_QUANTITY,
        ("huge", 2.0, "GTC", 1e15): Reason.INVALID_DISPLAY_QUANTITY,
        ("nan", 2.0, "GTC", float("nan")): Reason.INVALID_DISPLAY_QUANTITY,
        ("text", 2.0, "GTC", "0.5"): Reason.INVALID_DISPLAY_QUANTITY,
        ("bool", 2.0, "GTC", True): Reason.INVALID_DISPLAY_QUANTITY,
        ("step", 2.0, "GTC", 0.25): Reason.INVALID_DISPLAY_QUANTITY_STEP,
        ("tiny", 2.0, "GTC", 0.04): Reason.INVALID_DISPLAY_QUANTITY_STEP,
        ("ioc", 2.0, "IOC", 0.5): Reason.DISPLAY_QUANTITY_NOT_GTC,
        ("fok", 2.0, "fok", 0.5): Reason.DISPLAY_QUANTITY_NOT_GTC,
        ("qty", 2.05, "GTC", 0.5): Reason.INVALID_QUANTITY_STEP,  # the order's own checks come first
    }
    for (cid, qty, tif, display), reason in cases.items():
        report = ex.submit(cid, KEY, "BUY", 50.5, qty, tif, display_quantity_mw=display)
        assert report.status is OrderStatus.REJECTED and report.reason is reason, (cid, report.reason)
    assert ex.fills() == [] and ex.open_orders() == []  # marketable, yet nothing was taken
    ok = ex.submit("ok", KEY, "BUY", 40.0, 2.0, display_quantity_mw=0.1)
    assert ok.status is OrderStatus.NEW and ok.display_quantity_mw == 0.1
    assert ex.submit("null", KEY, "BUY", 40.0, 2.0, display_quantity_mw=None).display_quantity_mw is None


def test_iceberg_replay_and_duplicate_client_order_id() -> None:
    ex = book_feed()
    first = ex.submit("i", KEY, "BUY", 45.0, 2.0, display_quantity_mw=0.5)
    again = ex.submit("i", KEY, "BUY", 45.0, 2.0, display_quantity_mw=0.5)
    assert again.replayed and again.order_id == first.order_id and again.display_quantity_mw == 0.5
    for display in (0.6, None):
        dup = ex.submit("i", KEY, "BUY", 45.0, 2.0, display_quantity_mw=display)
        assert dup.status is OrderStatus.REJECTED and dup.reason is Reason.DUPLICATE_CLIENT_ORDER_ID
    ex.submit("plain", KEY, "BUY", 45.0, 2.0)
    assert ex.submit("plain", KEY, "BUY", 45.0, 2.0, display_quantity_mw=0.5).reason \
        is Reason.DUPLICATE_CLIENT_ORDER_ID
    assert ex.submit("plain", KEY, "BUY", 45.0, 2.0).replayed
    assert ex.order("i").display_quantity_mw == 0.5 and ex.order("plain").display_quantity_mw is None
    assert len(ex.open_orders()) == 2
    # A rejected iceberg is remembered too: the same bad display again is a replay of the reject.
    assert ex.submit("bad", KEY, "BUY", 45.0, 2.0, display_quantity_mw=0.25).reason \
        is Reason.INVALID_DISPLAY_QUANTITY_STEP
    assert ex.submit("bad", KEY, "BUY", 45.0, 2.0, display_quantity_mw=0.25).replayed
