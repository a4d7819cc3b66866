"""The seccomp filter every bwrap sandbox runs under: no typing into the user's terminal.

A sandbox started in the foreground shares the user's terminal. On kernels
before 6.2, and later ones with ``dev.tty.legacy_tiocsti=1``, ``ioctl(fd,
TIOCSTI, &c)`` pushes ``c`` into the terminal's input queue: an agent could
type a command that the user's shell runs once the sandbox exits.
``TIOCLINUX`` can paste the console selection the same way. Both fail with
EPERM under this filter; every other system call is left alone, so
interactive programs (job control, raw mode, window size) keep working.

The program is classic BPF, built here without libseccomp or a compiler, and
handed to bwrap (``--seccomp FD``). Three details matter, as Flatpak learnt:

- the ioctl request is compared on its low 32 bits only: the kernel ignores
  the upper half of that ``unsigned int`` argument, so a filter comparing all
  64 bits could be passed by setting them (CVE-2019-10063);
- a 64-bit process may also enter the kernel through its 32-bit ABI (i386 on
  x86-64, arm on aarch64), where ioctl has another number: both are checked;
- x32 system calls (x86-64 numbers with bit 30 set) are refused outright,
  and an architecture the filter does not know kills the process.
"""

from __future__ import annotations

import errno
import platform
import struct

TIOCSTI = 0x5412
TIOCLINUX = 0x541C

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]
_NR = 0
_ARCH = 4
_ARG1_LOW = 16 + 8 * 1  # little-endian: the low half of args[1] comes first

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_RET = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000

_AUDIT_ARCH_X86_64 = 0xC000003E
# (AUDIT_ARCH_*, ioctl's system call number) per ABI a process of this machine may use
_ABIS: dict[str, tuple[tuple[int, int], ...]] = {
    "x86_64": ((_AUDIT_ARCH_X86_64, 16), (0x40000003, 54)),
    "aarch64": ((0xC00000B7, 29), (0x40000028, 54)),
    "riscv64": ((0xC00000F3, 29),),
    "loongarch64": ((0xC0000102, 29),),
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
    lines += [(_JEQ, arch, f"abi{index}", None) for index, (arch, _) in enumerate(abis)]
    lines.append((_RET, _KILL_PROCESS, None, None))
    for index, (arch, ioctl) in enumerate(abis):
        lines += [f"abi{index}", (_LD_W_ABS, _NR, None, None)]
        if arch == _AUDIT_ARCH_X86_64:
            lines.append((_JGE, _X32_BIT, "enosys", None))
        lines += [(_JEQ, ioctl, "ioctl", None), (_RET, _ALLOW, None, None)]
    lines += [
        "ioctl",
        (_LD_W_ABS, _ARG1_LOW, None, None),
        (_JEQ, TIOCSTI, "eperm", None),
        (_JEQ, TIOCLINUX, "eperm", None),
        (_RET, _ALLOW, None, None),
        "eperm",
        (_RET, _ERRNO | errno.EPERM, None, None),
        "enosys",
        (_RET, _ERRNO | errno.ENOSYS, None, None),
    ]
    return _assemble(lines)
