/**
 * Keyed random streams: every random choice taggants makes (key images, key labels, the signing
 * set) is a pure function of the key secret and a context string, so that the owner can
 * regenerate it on any machine and nobody without the secret can predict it.
 *
 * Construction (scheme version 1, documented in docs/KEYS.md):
 *   okm = HKDF-SHA256(ikm = secret, salt = "taggants/keyed-stream/v1", info = UTF-8(context), 48)
 *   stream = AES-256-CTR(key = okm[0..32), initial counter block = okm[32..48)) applied to zeros
 * Integers in [0, n) take 32-bit big-endian words from the stream and reject words at or above
 * the largest multiple of n below 2^32 (no modulo bias).
 */
import { createCipheriv, hkdfSync, type Cipher } from "node:crypto";
import { TaggantsError } from "../errors.ts";

export const KEYED_STREAM_SALT = "taggants/keyed-stream/v1";

/** Zero bytes encrypted per refill; the stream is the same whatever this size is. */
const CHUNK_BYTES = 64 * 1024;
const ZEROS = new Uint8Array(CHUNK_BYTES);
const TWO_POW_32 = 2 ** 32;

export class KeyedStream {
  private readonly cipher: Cipher;
  private buffer = new Uint8Array(0);
  private offset = 0;

  constructor(secret: Uint8Array, context: string) {
    if (secret.length < 16) {
      throw new TaggantsError(
        "key-secret-short",
        `A keyed stream needs a key secret of at least 16 bytes; received ${secret.length}.`,
      );
    }
    const okm = new Uint8Array(
      hkdfSync("sha256", secret, KEYED_STREAM_SALT, Buffer.from(context, "utf8"), 48),
    );
    this.cipher = createCipheriv("aes-256-ctr", okm.subarray(0, 32), okm.subarray(32, 48));
  }

  /** The next `n` bytes of the stream (a fresh array). */
  bytes(n: number): Uint8Array {
    if (!Number.isInteger(n) || n < 0) {
      throw new TaggantsError(
        "keyed-stream-argument",
        `bytes(n) needs an integer n >= 0; received ${n}.`,
      );
    }
    const out = new Uint8Array(n);
    let written = 0;
    while (written < n) {
      if (this.offset === this.buffer.length) this.refill();
      const take = Math.min(n - written, this.buffer.length - this.offset);
      out.set(this.buffer.subarray(this.offset, this.offset + take), written);
      this.offset += take;
      written += take;
    }
    return out;
  }

  /** A uniform integer in [0, n), 1 <= n <= 2^32, by rejection sampling of 32-bit words. */
  uniformInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new TaggantsError(
        "keyed-stream-argument",
        `uniformInt(n) needs an integer 1 <= n <= 2^32; received ${n}.`,
      );
    }
    // Words in [limit, 2^32) would favour the smallest residues; draw again.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const word = this.word32();
      if (word < limit) return word % n;
    }
  }

  /** A uniformly shuffled copy of `items` (Fisher–Yates, from the last position down). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.uniformInt(i + 1);
      const held = out[i] as T;
      out[i] = out[j] as T;
      out[j] = held;
    }
    return out;
  }

  private word32(): number {
    if (this.buffer.length - this.offset >= 4) {
      const b = this.buffer;
      const o = this.offset;
      this.offset += 4;
      return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
    }
    const word = this.bytes(4);
    return ((word[0]! << 24) | (word[1]! << 16) | (word[2]! << 8) | word[3]!) >>> 0;
  }

  private refill(): void {
    this.buffer = new Uint8Array(this.cipher.update(ZEROS));
    this.offset = 0;
  }
}
