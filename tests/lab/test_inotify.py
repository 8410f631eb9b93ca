"""The lab refuses to boot machines the host's inotify limit cannot hold (their systemd would hang)."""

import ctypes
import os

import pytest

from fleet.lab.errors import LabError
from fleet.lab.system import INOTIFY_PER_MACHINE, check_inotify_room, inotify_instances


def test_room_is_checked_against_the_limit():
    check_inotify_room(2, in_use=100, limit=100 + 2 * INOTIFY_PER_MACHINE)
    check_inotify_room(0, in_use=500, limit=128)
    with pytest.raises(LabError, match=r"3 more machines need about 15 inotify instances and 120 of the host's 128"):
        check_inotify_room(3, in_use=120, limit=128)


def test_instances_of_this_user_are_counted():
    fd = ctypes.CDLL(None, use_errno=True).inotify_init()
    assert fd >= 0
    try:
        assert inotify_instances(os.geteuid()) >= 1
    finally:
        os.close(fd)
