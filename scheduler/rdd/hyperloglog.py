"""HyperLogLog registers behind RDD.countApproxDistinct, hashed as Spark hashes them.

PySpark maps each item to ``portable_hash(x) & 0xFFFFFFFF`` and Spark offers
those numbers to stream-lib's HyperLogLogPlus (normal mode), which hashes an
Integer/Long's decimal text with MurmurHash64A. We do the same, so the
registers, and therefore the estimates, are Spark's: exactly while linear
counting applies (up to stream-lib's threshold for the precision, e.g. about
400 distinct items at the default relativeSD 0.05) and beyond 5 * 2^p, where
the raw estimate is used. In between Spark subtracts an empirical bias that
we do not reproduce; we keep the linear-counting estimate there. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["estimate", "merge_registers", "precision_for", "registers_of"]

_M64 = (1 << 64) - 1
_MURMUR_M = 0xC6A4A7935BD1E995
_MURMUR_SEED = 0xE17A1465
#: stream-lib's linear-counting thresholds for precisions 4..18.
_THRESHOLDS = (10, 20, 40, 80, 220, 400, 900, 1800, 3100, 6500, 11500, 20000, 50000, 120000, 350000)


def precision_for(relative_sd: float) -> int:
    """Spark's register-count exponent p for a relative standard deviation (at least 4)."""
    return max(4, math.ceil(2.0 * math.log(1.054 / relative_sd) / math.log(2)))


def _murmur64a(data: bytes) -> int:
    length = len(data)
    h = (_MURMUR_SEED ^ (length * _MURMUR_M)) & _M64
    whole = length - length % 8
    for i in range(0, whole, 8):
        k = (int.from_bytes(data[i : i + 8], "little") * _MURMUR_M) & _M64
        k ^= k >> 47
        k = (k * _MURMUR_M) & _M64
        h = ((h ^ k) * _MURMUR_M) & _M64
    if length % 8:
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * _MURMUR_M) & _M64
    h ^= h >> 47
    h = (h * _MURMUR_M) & _M64
    return h ^ (h >> 47)


def registers_of(hashes: Iterable[int], p: int) -> bytearray:
    """The 2^p registers after offering every 32-bit item hash."""
    registers = bytearray(1 << p)
    low_bit = 1 << ((p - 1) & 31)  # a Java int shift, as stream-lib writes it...
    if low_bit & 0x80000000:
        low_bit |= 0xFFFFFFFF00000000  # ...sign-extended when or-ed into a long
    for value in hashes:
        hashed = _murmur64a(str(value).encode())
        index = hashed >> (64 - p)
        rest = ((hashed << p) & _M64) | low_bit
        rank = 65 - rest.bit_length()  # leading zeros + 1
        if rank > registers[index]:
            registers[index] = rank
    return registers


def merge_registers(left: bytearray, right: bytearray) -> bytearray:
    """Registers of the union of two streams."""
    return bytearray(max(a, b) for a, b in zip(left, right, strict=True))


def estimate(registers: bytearray, p: int) -> int:
    """The cardinality estimate of stream-lib's HyperLogLogPlus in normal mode."""
    m = len(registers)
    if p == 4:
        alpha = 0.673
    elif p == 5:
        alpha = 0.697
    elif p == 6:
        alpha = 0.709
    else:
        alpha = 0.7213 / (1 + 1.079 / m)
    raw = alpha * m * m / sum(2.0**-r for r in registers)
    zeros = registers.count(0)
    linear = m * math.log(m / zeros) if zeros else raw
    threshold = _THRESHOLDS[p - 4] if p <= 18 else 0
    chosen = linear if linear <= threshold or raw <= 5 * m else raw
    return math.floor(chosen + 0.5)  # Java's Math.round
