/** xorshift32: a tiny seeded generator for reproducible test traffic (tests only). */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Fills `dst` with bytes from `next` four at a time. */
export function fillRandom(dst: Uint8Array, next: () => number): void {
  let i = 0;
  for (; i + 4 <= dst.length; i += 4) {
    const v = next();
    dst[i] = v & 0xff;
    dst[i + 1] = (v >>> 8) & 0xff;
    dst[i + 2] = (v >>> 16) & 0xff;
    dst[i + 3] = v >>> 24;
  }
  for (; i < dst.length; i++) dst[i] = next() & 0xff;
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}
