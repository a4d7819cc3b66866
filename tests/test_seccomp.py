"""The seccomp program, run through a small classic-BPF interpreter for every ABI it must cover.

The real filter is also exercised for real: tests/test_escape.py types into a real
terminal from a real sandbox. This checks the cases a machine cannot produce on demand
(a 32-bit or x32 system call, another architecture).
"""

from __future__ import annotations

import errno
import struct

import pytest

from git_airlock.engines.bwrap import seccomp

ALLOW, KILL = 0x7FFF0000, 0x80000000
EPERM, ENOSYS = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
X86_64, I386, AARCH64, ARM = 0xC000003E, 0x40000003, 0xC00000B7, 0x40000028
TCGETS = 0x5401


def run(program: bytes, arch: int, nr: int, arg1: int = 0, arg0: int = 0) -> int:
    """What the kernel would answer for one system call (only the instructions the builder emits)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, arg1, 0, 0, 0, 0)
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code in (0x15, 0x35, 0x45):  # BPF_JMP | BPF_JEQ / BPF_JGE / BPF_JSET, BPF_K
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
        pc += 1


@pytest.mark.parametrize(
    ("arch", "nr", "arg1", "expected"),
    [
        (X86_64, 16, seccomp.TIOCSTI, EPERM),
        (X86_64, 16, seccomp.TIOCSTI | 1 << 32, EPERM),  # the kernel ignores the upper half
        (X86_64, 16, seccomp.TIOCLINUX, EPERM),
        (X86_64, 16, seccomp.TIOCSETD, EPERM),  # a line discipline outlives the sandbox
        (X86_64, 16, TCGETS, ALLOW),  # every other ioctl: raw mode, window size, job control
        (X86_64, 0, seccomp.TIOCSTI, ALLOW),  # read(2) whose second argument happens to match
        (I386, 54, seccomp.TIOCSTI, EPERM),  # the 32-bit ABI of the same process
        (I386, 16, seccomp.TIOCSTI, ALLOW),
        (X86_64, 0x40000000 | 514, seccomp.TIOCSTI, ENOSYS),  # x32
        (X86_64, 0x40000000, 0, ENOSYS),
        (0xDEADBEEF, 16, 0, KILL),  # an ABI the filter does not know
    ],
)
def test_x86_64_program(arch: int, nr: int, arg1: int, expected: int) -> None:
    assert run(seccomp.program("x86_64"), arch, nr, arg1) == expected


@pytest.mark.parametrize(
    ("arch", "nr", "expected"),
    [(AARCH64, 29, EPERM), (ARM, 54, EPERM), (AARCH64, 54, ALLOW), (X86_64, 16, KILL)],
)
def test_aarch64_program(arch: int, nr: int, expected: int) -> None:
    assert run(seccomp.program("aarch64"), arch, nr, seccomp.TIOCSTI) == expected


NEWUSER, NEWNS, THREAD = 0x10000000, 0x00020000, 0x00010F00


@pytest.mark.parametrize(
    ("arch", "nr", "flags", "expected"),
    [
        (X86_64, 272, NEWUSER | NEWNS, EPERM),  # unshare(CLONE_NEWUSER | CLONE_NEWNS)
        (X86_64, 272, NEWUSER | 1 << 32, EPERM),
        (X86_64, 272, NEWNS, ALLOW),  # needs a capability the sandbox lacks; refused by the kernel
        (X86_64, 56, NEWUSER, EPERM),  # clone
        (X86_64, 56, THREAD, ALLOW),  # threads and fork
        (X86_64, 435, 0, ENOSYS),  # clone3: its flags sit in memory; C libraries fall back to clone
        (I386, 310, NEWUSER, EPERM),
        (I386, 120, NEWUSER, EPERM),
        (I386, 120, THREAD, ALLOW),
        (X86_64, 248, 0, EPERM),  # add_key
        (X86_64, 249, 0, EPERM),  # request_key: it can start a helper on the host
        (X86_64, 250, 0, EPERM),  # keyctl
        (I386, 288, 0, EPERM),
    ],
)
def test_namespaces_and_keyrings(arch: int, nr: int, flags: int, expected: int) -> None:
    assert run(seccomp.program("x86_64"), arch, nr, arg0=flags) == expected


@pytest.mark.parametrize(("arch", "nr"), [(AARCH64, 97), (AARCH64, 220), (ARM, 337), (ARM, 120)])
def test_namespaces_on_aarch64(arch: int, nr: int) -> None:
    assert run(seccomp.program("aarch64"), arch, nr, arg0=NEWUSER) == EPERM
    assert run(seccomp.program("aarch64"), arch, nr, arg0=THREAD) == ALLOW


def test_unknown_machines_are_said_to_be_unsupported() -> None:
    assert seccomp.supported("x86_64") and seccomp.supported("aarch64")
    assert not seccomp.supported("s390x")  # big-endian: the low half of an argument sits elsewhere
