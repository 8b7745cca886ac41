"""The sandbox's seccomp filter: a classic BPF program, built here in pure Python.

bwrap loads it (``--seccomp FD``) just before it execs the job's first program, so the filter
binds the job and everything it starts, and no one inside can remove it. It refuses the
system calls a job never needs and that are the usual first step of a kernel or sandbox
escape: new namespaces (``unshare``, ``setns``, ``clone`` with any ``CLONE_NEW*`` flag — a new
user namespace gives a process capabilities over fresh mounts and network stacks), mounts of
any kind, ``ptrace`` and ``process_vm_*`` (reading a sibling's memory), the kernel keyring,
``bpf`` and ``perf_event_open``. They fail with EPERM; everything else is allowed.

``clone3`` fails with ENOSYS instead: its flags live in memory that seccomp cannot read, so it
cannot be checked, and ENOSYS makes glibc fall back to ``clone``, which can.

A call made under another ABI than the host's (i386 ``int 0x80`` on x86_64, or x32 numbers)
would be looked up in the wrong table, so such calls kill the process.
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# <linux/audit.h>
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# <linux/seccomp.h>
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# <linux/bpf_common.h>: ld word absolute, jeq/jge/jset with a constant, return a constant
LD_W_ABS = 0x20
JEQ_K = 0x15
JGE_K = 0x35
JSET_K = 0x45
RET_K = 0x06

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16  # little-endian: the low 32 bits of args[0], where clone's flags are

# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (CLONE_NEWTIME only
# exists for unshare and clone3, both refused whole)
CLONE_NEW_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
CLONE_NEW_FLAGS |= 0x20000000 | 0x40000000

REFUSED = (
    "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
    "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
)  # fmt: skip


@dataclass(frozen=True)
class Arch:
    audit: int
    numbers: dict[str, int]
    x32_bit: bool = False  # whether numbers with X32_SYSCALL_BIT are another ABI


_X86_64 = Arch(
    AUDIT_ARCH_X86_64,
    {
        "clone": 56, "ptrace": 101, "pivot_root": 155, "mount": 165, "umount2": 166,
        "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
        "perf_event_open": 298, "setns": 308, "process_vm_readv": 310,
        "process_vm_writev": 311, "bpf": 321, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
        "mount_setattr": 442,
    },
    x32_bit=True,
)  # fmt: skip
_AARCH64 = Arch(
    AUDIT_ARCH_AARCH64,
    {
        "mount": 40, "umount2": 39, "pivot_root": 41, "unshare": 97, "ptrace": 117,
        "add_key": 217, "request_key": 218, "keyctl": 219, "clone": 220,
        "perf_event_open": 241, "setns": 268, "process_vm_readv": 270,
        "process_vm_writev": 271, "bpf": 280, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
        "mount_setattr": 442,
    },
)  # fmt: skip
ARCHES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


def arch_for(machine: str | None = None) -> Arch | None:
    """The syscall table of ``machine`` (default: this one), or None where none is known."""
    return ARCHES.get((machine or platform.machine()).lower())


def filter_program(arch: Arch) -> bytes:
    """The filter as ``struct sock_filter[]`` bytes, ready for ``bwrap --seccomp``."""
    # Instructions as (code, jt-label, jf-label, k); labels are resolved once all are placed.
    prog: list[tuple[int, str | None, str | None, int]] = [
        (LD_W_ABS, None, None, OFFSET_ARCH),
        (JEQ_K, None, "kill", arch.audit),
        (LD_W_ABS, None, None, OFFSET_NR),
    ]
    if arch.x32_bit:
        prog.append((JGE_K, "kill", None, X32_SYSCALL_BIT))
    for name in REFUSED:
        prog.append((JEQ_K, "eperm", None, arch.numbers[name]))
    prog.append((JEQ_K, "enosys", None, arch.numbers["clone3"]))
    prog.append((JEQ_K, None, "allow", arch.numbers["clone"]))
    prog.append((LD_W_ABS, None, None, OFFSET_ARG0_LOW))
    prog.append((JSET_K, "eperm", "allow", CLONE_NEW_FLAGS))
    labels = {"allow": len(prog), "eperm": len(prog) + 1, "enosys": len(prog) + 2}
    labels["kill"] = len(prog) + 3
    prog += [
        (RET_K, None, None, SECCOMP_RET_ALLOW),
        (RET_K, None, None, SECCOMP_RET_ERRNO | errno.EPERM),
        (RET_K, None, None, SECCOMP_RET_ERRNO | errno.ENOSYS),
        (RET_K, None, None, SECCOMP_RET_KILL_PROCESS),
    ]
    out = bytearray()
    for pc, (code, jt, jf, k) in enumerate(prog):
        out += struct.pack(
            "=HBBI",
            code,
            0 if jt is None else labels[jt] - pc - 1,
            0 if jf is None else labels[jf] - pc - 1,
            k,
        )
    return bytes(out)
