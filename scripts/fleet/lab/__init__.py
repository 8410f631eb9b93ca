"""A lab of real Debian machines: systemd-nspawn containers on a host bridge.

Each machine boots systemd as PID 1 in its own network namespace, has a fixed
address on the lab bridge, NAT to the outside, sshd with a lab-only key, and a
copy-on-write (overlayfs) root on top of a cached debootstrap image.
"""
