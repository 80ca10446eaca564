"""``captioning.phrasing.content_seeds`` in TensorFlow ops, for the exported serving model.

The phrasing choice (``decoding.choose_first``) seeds each image with the first 8 bytes
(little-endian) of the SHA-256 of its 64x64 pixels. A twin of the hashlib version: the
SavedModel cannot call Python, and the CLI does not trace these rounds (~10 s) at every start;
tests/test_export.py checks that the two agree on varied images.

TensorFlow has no SHA-256 op, so the hash is written here from FIPS 180-4 in int64 arithmetic
masked to 32 bits (every image is 4,096 bytes: 65 blocks after padding). The round constants
are derived from the primes as the standard defines them, not typed in.
"""

from __future__ import annotations

import math

import tensorflow as tf

MASK = 0xFFFFFFFF


def _primes(n: int) -> list[int]:
    found: list[int] = []
    k = 2
    while len(found) < n:
        if all(k % p for p in found if p * p <= k):
            found.append(k)
        k += 1
    return found


def _icbrt(n: int) -> int:
    """floor(n ** (1/3)) for a big int."""
    x = 1 << ((n.bit_length() + 2) // 3)
    while True:
        y = (2 * x + n // (x * x)) // 3
        if y >= x:
            break
        x = y
    while x**3 > n:
        x -= 1
    return x


# first 32 bits of the fractional parts of the square roots (H) and cube roots (K) of primes
H0 = [math.isqrt(p << 64) & MASK for p in _primes(8)]
K = [_icbrt(p << 96) & MASK for p in _primes(64)]


_and, _or, _xor = tf.bitwise.bitwise_and, tf.bitwise.bitwise_or, tf.bitwise.bitwise_xor


def _shr(x, n: int):
    return tf.bitwise.right_shift(x, tf.constant(n, tf.int64))


def _shl(x, n: int):  # callers mask to 32 bits: values stay below 2**63
    return tf.bitwise.left_shift(x, tf.constant(n, tf.int64))


def _rotr(x, n: int):
    return _and(_or(_shr(x, n), _shl(x, 32 - n)), MASK)


def _xor3(a, b, c):
    return _xor(_xor(a, b), c)


def _compress(state, block):
    """One SHA-256 compression: state list of 8 (N,) int64, block (N, 16) int64 words."""
    w = [block[:, i] for i in range(16)]
    for i in range(16, 64):
        s0 = _xor3(_rotr(w[i - 15], 7), _rotr(w[i - 15], 18), _shr(w[i - 15], 3))
        s1 = _xor3(_rotr(w[i - 2], 17), _rotr(w[i - 2], 19), _shr(w[i - 2], 10))
        w.append(_and(w[i - 16] + s0 + w[i - 7] + s1, MASK))
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        s1 = _xor3(_rotr(e, 6), _rotr(e, 11), _rotr(e, 25))
        choice = _xor(_and(e, f), _and(MASK - e, g))  # MASK - e: ~e on 32 bits
        t1 = _and(h + s1 + choice + K[i] + w[i], MASK)
        s0 = _xor3(_rotr(a, 2), _rotr(a, 13), _rotr(a, 22))
        majority = _xor3(_and(a, b), _and(a, c), _and(b, c))
        h, g, f, e = g, f, e, _and(d + t1, MASK)
        d, c, b, a = c, b, a, _and(t1 + s0 + majority, MASK)
    return [_and(x + y, MASK) for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True)]


def sha256_words(data):
    """(N, L) uint8 messages (L static) -> (N, 8) int64: the SHA-256 digest as 32-bit words."""
    n, length = tf.shape(data)[0], data.shape[1]
    pad = (55 - length) % 64  # 0x80, zeros, 8-byte big-endian bit length: a multiple of 64
    tail = [0x80] + [0] * pad + list((8 * length).to_bytes(8, "big"))
    message = tf.concat([data, tf.tile(tf.constant([tail], tf.uint8), [n, 1])], 1)
    octets = tf.reshape(tf.cast(message, tf.int64), [n, -1, 16, 4])  # (N, blocks, 16, 4)
    words = tf.reduce_sum(octets * tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64), -1)
    blocks = tf.transpose(words, [1, 0, 2])  # (blocks, N, 16)
    start = tuple(tf.fill([n], tf.constant(h, tf.int64)) for h in H0)

    def body(i, *state):
        return (i + 1, *_compress(list(state), blocks[i]))

    out = tf.while_loop(lambda i, *_: i < tf.shape(blocks)[0], body, (0, *start))
    return tf.stack(out[1:], 1)


def _bswap32(x):
    low = _or(_shl(_and(x, 0xFF), 24), _shl(_and(x, 0xFF00), 8))
    return _or(low, _or(_and(_shr(x, 8), 0xFF00), _and(_shr(x, 24), 0xFF)))


def content_seed_halves(pixels):
    """(N, S, S[, C]) uint8 -> low and high 32 bits (N,) int64 of ``content_seeds`` (as
    ``phrasing.seed_halves`` splits them)."""
    size = math.prod(pixels.shape[1:])  # static: the message length, the image's bytes
    digest = sha256_words(tf.reshape(pixels, [tf.shape(pixels)[0], size]))
    return _bswap32(digest[:, 0]), _bswap32(digest[:, 1])


def content_seeds(pixels):
    """(N,) uint64 seeds, equal to ``phrasing.content_seeds`` (for tests and inspection)."""
    low, high = content_seed_halves(pixels)
    return tf.bitwise.bitwise_or(
        tf.bitwise.left_shift(tf.cast(high, tf.uint64), tf.constant(32, tf.uint64)),
        tf.cast(low, tf.uint64),
    )
