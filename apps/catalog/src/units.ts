const UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a byte size such as `512MiB`, `8GiB`, `4k` or `4096` (bytes); `KB`/`MB`/`GB` are read as the
 * binary units the kernel uses. Throws a RangeError naming the text when it is not a size.
 */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt](?:i?b)?|b)?$/i.exec(text.trim());
  if (!m) throw new RangeError(`"${text}" is not a size (try 512MiB or 8GiB)`);
  const unit = (m[2] ?? "b").toLowerCase().replace(/^([kmgt])(?:i?b)?$/, "$1ib");
  return Math.round(Number(m[1]) * UNITS[unit]!);
}

const NAMES = ["B", "KiB", "MiB", "GiB", "TiB"] as const;

/**
 * Formats a byte count exactly where that stays short: the largest binary unit that divides it, as
 * long as the number stays below 100,000 (`16 MiB`, `32,776 KiB` — 32 MiB and a guard page —,
 * `32,832 B`); otherwise rounded in the largest unit that keeps it at or above 1 (`1.21 GiB`).
 */
export function formatBytes(bytes: number): string {
  for (let i = NAMES.length - 1; i >= 0; i--) {
    const unit = 1024 ** i;
    if (i > 0 && Math.abs(bytes) < unit) continue;
    if (Number.isInteger(bytes / unit) && Math.abs(bytes / unit) < 100_000)
      return `${(bytes / unit).toLocaleString("en-US")} ${NAMES[i]}`;
  }
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < NAMES.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value.toFixed(value < 10 ? 2 : 1)} ${NAMES[i]}`;
}
