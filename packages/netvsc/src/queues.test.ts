import { labFlowHash, VRSS_SEND_TAB_SIZE } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { defaultNumChannels, maxChannels, netifGetNumDefaultRssQueues } from "./queues.js";
import { defaultTxTable, netvscPickTx } from "./select-queue.js";

describe("channel counts (rndis_filter_device_add, netvsc_devinfo_get)", () => {
  it("max_chn is min(VRSS_CHANNEL_MAX, CPUs, the host's queues), and 1 below two host queues", () => {
    expect(maxChannels(8, 1)).toBe(1);
    expect(maxChannels(1, 64)).toBe(1);
    expect(maxChannels(8, 4)).toBe(4);
    expect(maxChannels(4, 8)).toBe(4);
    expect(maxChannels(128, 128)).toBe(64);
  });

  it("the default count: VRSS_CHANNEL_DEFAULT 8, or max(16, cores / 2) from 646f071d315b", () => {
    expect(defaultNumChannels("vrss-8", 2)).toBe(8);
    expect(defaultNumChannels("vrss-8", 96)).toBe(8);
    expect(defaultNumChannels("max-16-rss", 2)).toBe(16);
    expect(defaultNumChannels("max-16-rss", 32)).toBe(16);
    expect(defaultNumChannels("max-16-rss", 96)).toBe(48);
    expect(netifGetNumDefaultRssQueues(1)).toBe(1);
    expect(netifGetNumDefaultRssQueues(7)).toBe(3);
  });
});

describe("netvsc_pick_tx", () => {
  it("the send table is i % num_chn and a frame's queue is table[hash & 15]", () => {
    expect([...defaultTxTable(3)]).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
    expect(defaultTxTable(1).every((q) => q === 0)).toBe(true);
    const frame = new Uint8Array(64);
    const seen = new Set<number>();
    for (let seq = 0; seq < 256; seq++) {
      new DataView(frame.buffer).setUint32(14, seq, true);
      const q = netvscPickTx(frame, defaultTxTable(4), 4);
      expect(q).toBe((labFlowHash(frame) & (VRSS_SEND_TAB_SIZE - 1)) % 4);
      seen.add(q);
    }
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
  });

  it("an entry past the real queue count stays in range", () => {
    const table = defaultTxTable(8);
    const frame = new Uint8Array(64);
    for (let seq = 0; seq < 64; seq++) {
      new DataView(frame.buffer).setUint32(14, seq, true);
      expect(netvscPickTx(frame, table, 3)).toBeLessThan(3);
    }
  });
});
