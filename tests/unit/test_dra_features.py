from __future__ import annotations

import pytest

from kplane.dra.features import Features, features_for, parse_gates


def test_135_defaults() -> None:
    assert features_for() == Features(admin_access=True, prioritized_list=True)


def test_136_defaults_turn_on_everything() -> None:
    assert features_for(version="1.36") == Features.all()


def test_overrides_and_binding_needs_device_status() -> None:
    f = features_for({"DRADeviceBindingConditions": True, "DRAResourceClaimDeviceStatus": False})
    assert not f.device_binding_and_status
    assert features_for({"DRADeviceBindingConditions": True}).device_binding_and_status


def test_parse_gates() -> None:
    gates = parse_gates("DRADeviceTaints=true, DRAAdminAccess=False")
    assert gates == {"DRADeviceTaints": True, "DRAAdminAccess": False}
    assert parse_gates("") == {}


@pytest.mark.parametrize("bad", ["DRADeviceTaints", "DRADeviceTaints=yes", "Nope=true"])
def test_bad_gates(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_gates(bad)


def test_unknown_version() -> None:
    with pytest.raises(ValueError):
        features_for(version="1.20")
