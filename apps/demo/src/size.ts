import { formatBytes, parseSize as parseCatalogSize } from "@ivm/catalog";
import { InvalidArgumentError } from "commander";

/** Parses sizes such as 512MiB, 8GiB, 8G or 4096 (bytes) for --memory, within what the demo supports. */
export function parseSize(text: string): number {
  let bytes: number;
  try {
    bytes = parseCatalogSize(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
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

export { formatBytes };
