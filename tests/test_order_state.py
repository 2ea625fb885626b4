"""The order state machine refuses invalid transitions (hand cases + property test)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradeloom.errors import OrderStateError
from tradeloom.model import Order, OrderStatus, OrderType, Side
from tradeloom.model.orders import TRANSITIONS


def new(**kw) -> Order:  # type: ignore[no-untyped-def]
    base = {"client_order_id": "o1", "symbol": "X", "side": Side.BUY, "quantity": 10.0}
    return Order(**(base | kw))


def test_happy_path_with_partial_fills() -> None:
    o = new().transition(OrderStatus.ACCEPTED, 1)
    o = o.with_fill(4, 100.0, 2)
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.remaining == 6
    o = o.with_fill(6, 110.0, 3)
    assert o.status is OrderStatus.FILLED
    assert o.avg_fill_price == pytest.approx(106.0)


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (OrderStatus.PENDING, OrderStatus.EXPIRED),
        (OrderStatus.ACCEPTED, OrderStatus.REJECTED),
        (OrderStatus.ACCEPTED, OrderStatus.PENDING),
        (OrderStatus.CANCELED, OrderStatus.ACCEPTED),
        (OrderStatus.REJECTED, OrderStatus.CANCELED),
    ],
)
def test_invalid_transitions_are_refused(start: OrderStatus, target: OrderStatus) -> None:
    order = new(status=start)
    with pytest.raises(OrderStateError, match=f"cannot go from {start.value} to {target.value}"):
        order.transition(target, 1)


def test_fill_of_a_pending_order_is_refused() -> None:
    with pytest.raises(OrderStateError, match="pending to filled"):
        new().with_fill(10, 100.0, 1)


def test_overfill_is_refused() -> None:
    o = new().transition(OrderStatus.ACCEPTED, 1).with_fill(8, 100.0, 2)
    with pytest.raises(OrderStateError, match="overfill"):
        o.with_fill(3, 100.0, 3)


def test_order_shape_is_validated() -> None:
    with pytest.raises(OrderStateError, match="needs a positive limit_price"):
        new(type=OrderType.LIMIT)
    with pytest.raises(OrderStateError, match="takes no stop_price"):
        new(type=OrderType.LIMIT, limit_price=1.0, stop_price=2.0)
    with pytest.raises(OrderStateError, match="positive finite"):
        new(quantity=-1.0)


def test_orders_are_immutable() -> None:
    o = new()
    with pytest.raises(AttributeError):
        o.status = OrderStatus.FILLED  # type: ignore[misc]


ACTIONS = st.lists(
    st.one_of(
        st.sampled_from(
            [OrderStatus.ACCEPTED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED,
             OrderStatus.PENDING]
        ),
        st.floats(min_value=0.5, max_value=12.0),  # a fill of that quantity
    ),
    max_size=12,
)  # fmt: skip


@given(ACTIONS)
def test_any_sequence_keeps_the_machine_consistent(actions: list) -> None:  # type: ignore[type-arg]
    order = new()
    for step, action in enumerate(actions):
        before = order
        try:
            if isinstance(action, float):
                order = order.with_fill(action, 100.0, step)
            else:
                order = order.transition(action, step)
        except OrderStateError:
            assert order is before  # a refused step changes nothing
            if isinstance(action, float):
                allowed = before.status.is_working and (
                    before.filled_quantity + action <= before.quantity + 1e-9
                )
            else:
                allowed = action in TRANSITIONS[before.status] and action not in (
                    OrderStatus.PARTIALLY_FILLED,
                    OrderStatus.FILLED,
                )
            assert not allowed
            continue
        # an accepted step is one the table allows
        assert order.status in TRANSITIONS[before.status]
        assert 0 <= order.filled_quantity <= order.quantity
        assert (order.status is OrderStatus.FILLED) == (order.filled_quantity == order.quantity)
        if before.status.is_terminal:
            pytest.fail("a terminal order changed state")
