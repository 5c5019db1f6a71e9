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

/** Formats a byte count with the largest binary unit that keeps it at or above 1 (`16 MiB`, `1020 KiB`). */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"] as const;
  let value = bytes;
  let i = 0;
  while (Math.abs(value) >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const digits = Number.isInteger(value) ? 0 : value < 10 ? 2 : 1;
  return `${value.toFixed(digits)} ${units[i]}`;
}
