import { describe, expect, it } from "vitest";
import { MessageCopies, SynicLink } from "./synic.js";

describe("SynIC message copies", () => {
  it("each copy keeps its bytes whatever later happens to the original or to later copies", () => {
    const copies = new MessageCopies();
    const kept: { copy: Uint8Array; want: number[] }[] = [];
    const src = new Uint8Array(240);
    // enough 240-byte messages to fill several chunks
    for (let m = 0; m < 1000; m++) {
      src.fill(m & 0xff);
      src[0] = m >> 8;
      const copy = copies.copy(src, 200 + (m % 41));
      kept.push({ copy, want: Array.from(src.subarray(0, copy.length)) });
      src.fill(0xee);
    }
    for (const { copy, want } of kept) expect(Array.from(copy)).toEqual(want);
  });

  it("the host gets what the guest posted, the guest what the host sent (cut at 240 bytes)", () => {
    const link = new SynicLink();
    const msg = Uint8Array.from({ length: 100 }, (_, i) => i);
    expect(link.postMessage(msg, 1)).toBe(0);
    msg.fill(0);
    expect(Array.from(link.takeForHost()!)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    const long = new Uint8Array(300).fill(9);
    expect(link.sendToGuest(long)).toBe(true);
    long.fill(1);
    const got = link.takeForGuest()!;
    expect(got.length).toBe(240);
    expect(got.every((b) => b === 9)).toBe(true);
  });
});
