"""CRC-32C (Castagnoli), as TensorFlow checksums the tensors of a checkpoint.

The ``crc32c`` package computes it in C (SSE4.2/ARMv8 instructions, the GIL released on large
buffers); without it a table-driven Python loop checks small tensors only. TensorFlow stores the
checksum masked (rotated and offset), as LevelDB does. ``crc32c_combine`` joins the checksums of
consecutive parts, so a large tensor can be checksummed on several threads.

Reference: tsl/lib/hash/crc32c.h (Mask), zlib's crc32_combine.
"""
from __future__ import annotations


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _crc32c_table()


try:  # a C implementation (SSE4.2/ARMv8 CRC instructions, GIL released on large buffers)
    from crc32c import crc32c as _crc32c_native
except ImportError:  # the pure-Python table still checks small tensors
    _crc32c_native = None

FAST_CRC32C = _crc32c_native is not None


def crc32c(data: bytes, value: int = 0) -> int:
    """CRC-32C (Castagnoli), as TensorFlow checksums tensor data, continuing from ``value``.
    Without the C package this is a Python loop: meant for small tensors only."""
    if _crc32c_native is not None:
        return _crc32c_native(data, value)
    crc = value ^ 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, i = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[i]
        vector >>= 1
        i += 1
    return total


def _zeros_operators(count: int) -> list[list[int]]:
    """The first ``count`` of the 32x32 GF(2) matrices that append 1, 2, 4, 8, ... zero bytes
    to a CRC-32C register (zlib's crc32_combine method, Castagnoli polynomial), kept."""
    ops = _ZEROS_OPERATORS
    if not ops:
        op = [0x82F63B78] + [1 << n for n in range(31)]  # one zero bit
        for _ in range(3):  # -> one zero byte
            op = [_gf2_times(op, row) for row in op]
        ops.append(op)
    while len(ops) < count:
        ops.append([_gf2_times(ops[-1], row) for row in ops[-1]])
    return ops


_ZEROS_OPERATORS: list[list[int]] = []


def crc32c_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32C of A+B from crc(A), crc(B) and len(B): lets parts of a large tensor be
    checksummed on several threads."""
    for op in _zeros_operators(len2.bit_length()):
        if not len2:
            break
        if len2 & 1:
            crc1 = _gf2_times(op, crc1)
        len2 >>= 1
    return crc1 ^ crc2


def mask_crc32c(crc: int) -> int:
    """TensorFlow stores checksums masked (rotated and offset), as LevelDB does."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = _crc32c_native(data) if _crc32c_native is not None else crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF  # mask_crc32c, inlined
