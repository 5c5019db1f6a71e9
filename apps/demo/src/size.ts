import { InvalidArgumentError } from "commander";

const UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parses sizes such as 512MiB, 8GiB, 8G or 4096 (bytes) for --memory. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`"${text}" is not a size (try 512MiB or 8GiB)`);
  const raw = (m[2] ?? "b").toLowerCase();
  const unit = raw === "b" ? "b" : `${raw[0]}ib`;
  const bytes = Math.round(Number(m[1]) * UNITS[unit]!);
  if (bytes % 4096 !== 0 || bytes < 128 * 2 ** 20) {
    throw new InvalidArgumentError("memory must be at least 128MiB and a multiple of 4KiB");
  }
  if (bytes > 256 * 2 ** 30)
    throw new InvalidArgumentError("memory above 256GiB is not supported by the demo");
  return bytes;
}

export function parseCount(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${+(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${+(n / 2 ** 20).toFixed(2)} MiB`;
  if (n >= 2 ** 10) return `${+(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}
