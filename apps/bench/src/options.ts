import { parseSize } from "@ivm/catalog";
import { InvalidArgumentError } from "commander";

/** An integer flag in [min, max]. */
export function intIn(min: number, max: number, what: string): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}, got "${text}"`);
    return n;
  };
}

/** A guest size: 256 MiB to 1 TiB, a whole number of pages. */
export function memorySize(text: string): number {
  let bytes: number;
  try {
    bytes = parseSize(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  if (bytes % 4096 !== 0 || bytes < 256 * 2 ** 20 || bytes > 2 ** 40)
    throw new InvalidArgumentError(
      `guest memory must be 256MiB to 1TiB, in whole 4 KiB pages, got "${text}"`,
    );
  return bytes;
}

/** A comma-separated list (`1,2,3`, or a range `1-5`) of seeds. */
export function seedList(text: string): number[] {
  const seed = intIn(0, 2 ** 31 - 1, "a seed");
  return text.split(",").flatMap((part) => {
    const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(part);
    if (!range) return [seed(part)];
    const [from, to] = [seed(range[1]!), seed(range[2]!)];
    if (to < from || to - from > 10_000) throw new InvalidArgumentError(`"${part}" is not a seed range`);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}

/** A comma-separated list of guest sizes. */
export function sizeList(text: string): number[] {
  return text.split(",").map((t) => memorySize(t));
}

export function percent(text: string): number {
  const n = Number(text.replace(/%$/, ""));
  if (!Number.isFinite(n) || n < 0 || n > 1000 || text.trim() === "")
    throw new InvalidArgumentError(`the threshold is a percentage from 0 to 1000, got "${text}"`);
  return n;
}
