import resource

from tongdai.media.idle_legs import IdleLegs
from tongdai.media.relay import idle_legs_cap


def test_legs_come_back_oldest_first_once_out_of_quarantine() -> None:
    idle: IdleLegs[str] = IdleLegs(quarantine=2.0, capacity=3)
    assert idle.park("a", 10.0) and idle.park("b", 11.0)
    assert idle.take(11.9) is None  # "a" parked 1.9 s ago
    assert idle.take(12.0) == "a"
    assert idle.take(12.5) is None
    assert idle.take(12.5, in_quarantine=True) == "b"  # the range is used up
    assert idle.take(20.0) is None and len(idle) == 0


def test_capacity_and_drain() -> None:
    idle: IdleLegs[int] = IdleLegs(quarantine=0.0, capacity=2)
    assert idle.park(1, 0.0) and idle.park(2, 0.0)
    assert not idle.park(3, 0.0)  # full: the caller closes it
    assert idle.drain() == [1, 2]
    assert len(idle) == 0 and idle.take(5.0) is None


def test_the_relay_parks_its_whole_range_within_an_eighth_of_its_file_descriptors() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert idle_legs_cap(5000) == 128  # 256 sockets of 1,024
        assert idle_legs_cap(100) == 100  # a small range: all of it
        if hard == resource.RLIM_INFINITY or hard >= 65536:
            resource.setrlimit(resource.RLIMIT_NOFILE, (65536, hard))
            assert idle_legs_cap(5000) == 5000  # the default range, whole
        elif hard >= 8192:
            resource.setrlimit(resource.RLIMIT_NOFILE, (8192, hard))
            assert idle_legs_cap(5000) == 1024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
