import typing

from tongdai.pbx.b2bua import driver
from tongdai.pbx.b2bua.actions import Action


def test_every_action_has_its_entry_in_the_drivers_table() -> None:
    kinds = set(typing.get_args(Action))
    assert len(kinds) > 20  # the union is flattened: flow actions are members too
    assert kinds == set(driver._PERFORM)
