"""The seccomp filter every bwrap sandbox runs under.

It refuses a few system calls that let a sandboxed process reach beyond its
namespaces; everything else is left alone, so interactive programs (job
control, raw mode, window size) and build tools keep working:

- ``ioctl`` with TIOCSTI, TIOCLINUX or TIOCSETD (EPERM): a sandbox in the
  foreground has a terminal of its own (``ptyrelay``), but a second wall costs
  nothing: on kernels before 6.2 (later ones with ``dev.tty.legacy_tiocsti=1``)
  TIOCSTI pushes characters into a terminal's input queue, which whatever reads
  it next takes as typed; TIOCLINUX can paste the console selection the same
  way; TIOCSETD changes the line discipline, which outlives the sandbox (N_NULL
  leaves the terminal dead);
- ``unshare``/``clone`` with CLONE_NEWUSER (EPERM), and ``clone3`` (ENOSYS, so
  that C libraries fall back to ``clone``, whose flags a filter can read): no
  nested user namespace, in which the agent would hold every capability over
  new namespaces of its own (CAP_SYS_ADMIN: mount a cgroup file system, set
  file capabilities) and reach much more of the kernel than the rootless
  container's capabilities it has in its own;
- ``keyctl``, ``add_key`` and ``request_key`` (EPERM): kernel keyrings are not
  namespaced, so the sandbox would share the user's session keyring, and a
  key request can start a helper on the host.

The program is classic BPF, built here without libseccomp or a compiler, and
handed to bwrap (``--seccomp FD``). Details that matter, as Flatpak learnt:

- arguments are compared on their low 32 bits only: the kernel ignores the
  upper half of an ``unsigned int`` (the ioctl request, the clone flags), so a
  filter comparing all 64 bits could be passed by setting them (CVE-2019-10063);
- a 64-bit process may also enter the kernel through its 32-bit ABI (i386 on
  x86-64, arm on aarch64), where the numbers differ: both are covered;
- x32 system calls (x86-64 numbers with bit 30 set) are refused outright,
  and an architecture the filter does not know kills the process.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

TIOCSTI = 0x5412
TIOCLINUX = 0x541C
TIOCSETD = 0x5423

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_NR = 0
_ARCH = 4
_ARG0_LOW = 16  # little-endian: the low half of each argument comes first
_ARG1_LOW = 16 + 8 * 1

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_RET = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_JSET = 0x45
_X32_BIT = 0x40000000
CLONE_NEWUSER = 0x10000000
_AUDIT_ARCH_X86_64 = 0xC000003E


@dataclass(frozen=True)
class Abi:
    """One system call ABI: its AUDIT_ARCH_* value and the numbers the filter looks at."""

    arch: int
    ioctl: int
    clone: int
    unshare: int
    keyrings: tuple[int, int, int]
    """add_key, request_key, keyctl."""
    clone3: int = 435


_X86_64 = Abi(_AUDIT_ARCH_X86_64, ioctl=16, clone=56, unshare=272, keyrings=(248, 249, 250))
_I386 = Abi(0x40000003, ioctl=54, clone=120, unshare=310, keyrings=(286, 287, 288))
_ARM = Abi(0x40000028, ioctl=54, clone=120, unshare=337, keyrings=(309, 310, 311))


def _generic(arch: int) -> Abi:
    """The asm-generic numbers (aarch64, riscv64, loongarch64)."""
    return Abi(arch, ioctl=29, clone=220, unshare=97, keyrings=(217, 218, 219))


_ABIS: dict[str, tuple[Abi, ...]] = {
    "x86_64": (_X86_64, _I386),
    "aarch64": (_generic(0xC00000B7), _ARM),
    "riscv64": (_generic(0xC00000F3),),
    "loongarch64": (_generic(0xC0000102),),
}


def supported(machine: str | None = None) -> bool:
    return (machine or platform.machine()) in _ABIS


Line = tuple[int, int, str | None, str | None] | str
"""An instruction (code, k, label when true, label when false) or a label."""


def _assemble(lines: list[Line]) -> bytes:
    """Resolve labels into BPF's relative jumps and pack ``struct sock_filter``s."""
    positions: dict[str, int] = {}
    instructions: list[tuple[int, int, str | None, str | None]] = []
    for line in lines:
        if isinstance(line, str):
            positions[line] = len(instructions)
        else:
            instructions.append(line)
    packed = []
    for index, (code, k, when_true, when_false) in enumerate(instructions):
        true_offset = positions[when_true] - index - 1 if when_true else 0
        false_offset = positions[when_false] - index - 1 if when_false else 0
        packed.append(struct.pack("=HBBI", code, true_offset, false_offset, k))
    return b"".join(packed)


def program(machine: str | None = None) -> bytes:
    """The filter as bwrap reads it: an array of ``struct sock_filter``."""
    abis = _ABIS[machine or platform.machine()]
    lines: list[Line] = [(_LD_W_ABS, _ARCH, None, None)]
    lines += [(_JEQ, abi.arch, f"abi{index}", None) for index, abi in enumerate(abis)]
    lines.append((_RET, _KILL_PROCESS, None, None))
    for index, abi in enumerate(abis):
        lines += [f"abi{index}", (_LD_W_ABS, _NR, None, None)]
        if abi.arch == _AUDIT_ARCH_X86_64:
            lines.append((_JGE, _X32_BIT, "enosys", None))
        lines += [
            (_JEQ, abi.ioctl, "ioctl", None),
            (_JEQ, abi.clone, "flags", None),
            (_JEQ, abi.unshare, "flags", None),
            (_JEQ, abi.clone3, "enosys", None),
            *((_JEQ, number, "eperm", None) for number in abi.keyrings),
            (_RET, _ALLOW, None, None),
        ]
    lines += [
        "ioctl",
        (_LD_W_ABS, _ARG1_LOW, None, None),
        (_JEQ, TIOCSTI, "eperm", None),
        (_JEQ, TIOCLINUX, "eperm", None),
        (_JEQ, TIOCSETD, "eperm", None),
        (_RET, _ALLOW, None, None),
        "flags",
        (_LD_W_ABS, _ARG0_LOW, None, None),
        (_JSET, CLONE_NEWUSER, "eperm", None),
        (_RET, _ALLOW, None, None),
        "eperm",
        (_RET, _ERRNO | errno.EPERM, None, None),
        "enosys",
        (_RET, _ERRNO | errno.ENOSYS, None, None),
    ]
    return _assemble(lines)
