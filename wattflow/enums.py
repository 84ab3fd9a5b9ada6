"""The trading vocabulary's enumerations: time in force, order actions, cancel reasons, trading states.

Each is a ``StrEnum``: it compares equal to its text (``TimeInForce.IOC == "IOC"``), so it goes onto a Kafka
topic, a QuestDB symbol column or an HTTP request as that text, and a value read back from any of them turns
into the enum with ``TimeInForce(text)``.
"""

from __future__ import annotations

import enum


class TimeInForce(enum.StrEnum):
    """How long an order may rest: good till cancelled, immediate or cancel, fill or kill."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderAction(enum.StrEnum):
    """What a command asks of the venue (a row of the ``orders`` table per command and outcome)."""

    SUBMIT = "SUBMIT"
    CANCEL = "CANCEL"
    CANCEL_ALL = "CANCEL_ALL"
    RESUBMIT = "RESUBMIT"  # an order sent again under its id after the venue said it never got it


class TradingState(enum.StrEnum):
    """The kill switch: ACTIVE trades, REDUCING only lets positions shrink, HALTED stops every new order."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class CancelReason(enum.StrEnum):
    """Why the engine stops working an order."""

    STALE = "STALE"  # older than the order time to live
    WRONG_SIDE = "WRONG_SIDE"  # the target moved to the other side, or close enough to the position
    REPRICE = "REPRICE"  # sizing would price it at least the reprice step away now
    GATE_CLOSURE = "GATE_CLOSURE"  # the product can no longer be traded
    FEED_STALE = "FEED_STALE"  # the product's signals went silent while we hold an order
    HALTED = "HALTED"  # the kill switch
    REDUCING = "REDUCING"  # the kill switch in reduce-only mode
    #: an order decided and logged before a crash that the resumed engine did not decide again
    ORPHANED_AFTER_RESTART = "ORPHANED_AFTER_RESTART"
