r"""Keep freed tensor memory in the process: glibc's allocator tuned for the jobs' allocations.

A training step allocates and frees the same large activations at every update: the encoder's
hidden features ``(P, B, M, H)`` are 1.6 MB on Poisson (``16 * 20 * 20 * 64`` floats) and
2.1 MB on Weinberg. glibc serves a block above its mmap threshold (128 KiB, raised only to the
largest block freed so far) by a fresh ``mmap`` and returns it with ``munmap`` when freed, and
it trims the top of the heap back to the system once more than twice that threshold lies free
there. Each way, the next step's block is new memory that the kernel zero-fills page by page on
first touch: some 4 000–13 000 page faults per Poisson step and 10 000–28 000 per Weinberg step
on one thread, 5–19 % of the step's time (``docs/studies/allocator.md``).

:func:`retain_freed_memory` asks glibc (``mallopt``) to serve every block up to 32 MiB (the most
glibc accepts) from its heap and to trim the heap only when more than :data:`TRIM_THRESHOLD` of
it is free at the top, so a step reuses the pages the previous one freed. Arithmetic is not
touched: every number is bit for bit the same. The resident memory of a job stays near its peak
instead of falling back between steps.

Called once by the command line (:func:`alfi.cli.main`) before any work, never on import: a
library should not change its host's allocator. Elsewhere than glibc (macOS, musl) it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "retain_freed_memory"]

#: Blocks up to this size come from the heap, not from their own ``mmap`` (glibc's maximum on
#: 64-bit systems: ``4 * 1024 * 1024 * sizeof(long)``).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: The heap's top is returned to the system only when more than this is free there.
TRIM_THRESHOLD = 256 * 1024 * 1024

# glibc's malloc.h parameter numbers
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def retain_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds (module docstring); ``True`` if glibc took both.

    Does nothing and returns ``False`` where the C library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success, 0 when it refuses a value
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
