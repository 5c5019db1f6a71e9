// The guest's PPI lookups against a host that sends per-packet info: rndis_get_ppi as
// rndis_filter_receive_data calls it four times (VLAN, checksum, hash, RNDIS_PKTINFO_ID), each copying
// the area out of the receive buffer again, and only after the area's offset and length pass
// (44144185951a, 505e3f00c3f3, 0ba35fe91ce3). The honest netvsp sends no PPIs, so each message here is
// written by the host into its own receive buffer over the frame it queued (rewriteRecvBuffer).

import type { Finding } from "@ivm/kernel";
import { NETVSC_FINDING, type NetvscDevice, type RxPacketInfo } from "@ivm/netvsc";
import { RNDIS_PPI_LOOKUPS } from "@ivm/netvsc-protocol";
import { describe, expect, it } from "vitest";
import { makeWorld, mustAdd, type World } from "./world.js";

/** The PPI types the driver looks up, in its order; IPSEC_PKTINFO (1) is one it does not. */
const [VLAN_T, CSUM_T, HASH_T, PKTINFO_T] = RNDIS_PPI_LOOKUPS.map((l) => l.type) as [
  number,
  number,
  number,
  number,
];
const IPSEC_T = 1;

const u32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/** One PPI entry: size, type (| the internal bit), payload offset, then its payload bytes. */
function entry(
  type: number,
  payload: readonly number[],
  o: { internal?: boolean; size?: number; at?: number } = {},
) {
  const at = o.at ?? 12;
  const size = o.size ?? at + payload.length;
  const b = [...u32(size), ...u32((type | (o.internal === true ? 0x8000_0000 : 0)) >>> 0), ...u32(at)];
  while (b.length < at) b.push(0);
  return [...b, ...payload];
}

const VLAN_WORD = 5 | (1 << 3) | (0x123 << 4); // pri 5, cfi 1, vlanid 0x123
const CSUM_WORD = 0x0000_0038; // tcp, udp and ip checksum succeeded
const HASH_WORD = 0xdead_beef;
const PKTINFO = [1, 0x06, 0x34, 0x12]; // ver 1, flag 1ST_FRAG | LAST_FRAG, pkt_id 0x1234

const vlan = (w = VLAN_WORD) => entry(VLAN_T, u32(w));
const csum = (w = CSUM_WORD) => entry(CSUM_T, u32(w));
const hash = (w = HASH_WORD) => entry(HASH_T, u32(w));
const pktinfo = () => entry(PKTINFO_T, PKTINFO, { internal: true });

/**
 * A data message: header, rndis_packet (PPI area at `ppiOffset`: 36 by default, 0 when there is no
 * area, as a host without PPIs sends it), the area, the frame.
 */
function message(area: readonly number[], frameLen: number, o: { ppiOffset?: number; ppiLen?: number } = {}) {
  const total = 8 + 36 + area.length + frameLen;
  const b = new Uint8Array(total);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1, true); // RNDIS_MSG_PACKET
  dv.setUint32(4, total, true);
  dv.setUint32(8, 36 + area.length, true); // data_offset
  dv.setUint32(12, frameLen, true);
  dv.setUint32(28, o.ppiOffset ?? (area.length === 0 ? 0 : 36), true);
  dv.setUint32(32, o.ppiLen ?? area.length, true);
  b.set(area, 44);
  for (let i = 0; i < frameLen; i++) b[44 + area.length + i] = (i * 7 + 3) & 0xff;
  return b;
}

interface Got {
  readonly frame: Uint8Array;
  readonly info: RxPacketInfo;
}

function setup(): { w: World; dev: NetvscDevice; got: Got[] } {
  const w = makeWorld("isolated");
  const got: Got[] = [];
  const dev = mustAdd(w, { onReceive: (f, info) => got.push({ frame: f.slice(), info: { ...info } }) });
  return { w, dev, got };
}

/** What one delivered message cost the guest. */
interface Cost {
  ppiCopies: number;
  ppiBytes: number;
  rangeBytes: number;
  sharedReads: number;
  parsedFromShared: number;
}

function snapshot(w: World, dev: NetvscDevice): Cost {
  const s = dev.stats;
  return {
    ppiCopies: s.rxPpiCopies,
    ppiBytes: s.rxPpiBytes,
    rangeBytes: s.rxRangeBytes,
    sharedReads: w.memory.mmu.sharedReads,
    parsedFromShared: s.parsedFromShared,
  };
}

/**
 * The host queues one frame, then (before the guest's turn) writes `msg` over its whole RNDIS message
 * in every section (the frame is in one of them, at its start); the guest polls. Returns the cost.
 */
function receive(w: World, dev: NetvscDevice, msg: Uint8Array): Cost {
  const recv = w.netvsp.recvBuffer!;
  w.hostPaused = true;
  w.netvsp.queueRx([msg.length - 44]);
  w.netvsp.poll();
  for (let s = 0; s < recv.sectionCount; s++)
    expect(w.netvsp.rewriteRecvBuffer(s * recv.sectionSize, msg)).toBe(true);
  const before = snapshot(w, dev);
  dev.poll();
  const after = snapshot(w, dev);
  w.hostPaused = false;
  w.scheduler.runIdle();
  return {
    ppiCopies: after.ppiCopies - before.ppiCopies,
    ppiBytes: after.ppiBytes - before.ppiBytes,
    rangeBytes: after.rangeBytes - before.rangeBytes,
    sharedReads: after.sharedReads - before.sharedReads,
    parsedFromShared: after.parsedFromShared - before.parsedFromShared,
  };
}

const findings = (w: World): readonly Finding[] => w.conn.kernel.findings.list();
/** The boot reported exactly one finding, from rndis_get_ppi: its id, invariant and phrases of `what`. */
function expectOnlyFinding(w: World, id: string, invariant: string, ...phrases: string[]): void {
  const f = findings(w);
  expect(f.map((x) => x.id)).toEqual([id]);
  expect(f[0]!.invariant).toBe(invariant);
  for (const p of phrases) expect(f[0]!.what).toContain(p);
  expect(f[0]!.where).toContain("rndis_get_ppi");
}

const NONE: RxPacketInfo = { vlan: null, vlanTci: null, csumInfo: null, hash: null, pktinfoFlag: null };

describe("rndis_get_ppi: when the PPI area is copied", () => {
  it("per_pkt_info_offset 0: no PPI copy whatever per_pkt_info_len says, the frame goes up without PPIs", () => {
    const { w, dev, got } = setup();
    const plain = receive(w, dev, message([], 100));
    // A length with no offset: the kernel returns before looking at it.
    const zero = receive(w, dev, message(vlan(), 100, { ppiOffset: 0 }));
    for (const c of [plain, zero]) {
      expect(c.ppiCopies).toBe(0);
      expect(c.rangeBytes).toBe(44); // the RNDIS header and rndis_packet, nothing else
    }
    expect(zero.sharedReads).toBe(plain.sharedReads);
    expect(got.map((g) => g.info)).toEqual([NONE, NONE]);
    expect(got[1]!.frame).toEqual(message(vlan(), 100, { ppiOffset: 0 }).subarray(44 + 16));
    expect(dev.stats.rxDrops.snapshot()).toEqual({});
    expect(findings(w)).toEqual([]);
  });

  it.each([
    ["an offset inside rndis_packet", { ppiOffset: 35 }, "ppi-offset-invalid"],
    ["an offset past the range", { ppiOffset: 36 + 16 + 100 + 1 }, "ppi-offset-invalid"],
    ["a length below one entry header", { ppiLen: 11 }, "ppi-len-invalid"],
    ["an offset with a length of 0", { ppiLen: 0 }, "ppi-len-invalid"],
    ["a length past the range", { ppiLen: 16 + 100 + 1 }, "ppi-len-invalid"],
  ] as const)("%s: no copy, the reason counted once, the frame goes up without PPIs", (_, o, reason) => {
    const { w, dev, got } = setup();
    const c = receive(w, dev, message(vlan(), 100, o));
    expect(c.ppiCopies).toBe(0);
    expect(c.rangeBytes).toBe(44);
    expect(dev.stats.rxDrops.get(reason)).toBe(1);
    expect(dev.stats.rxDrops.total).toBe(1);
    expect(got).toHaveLength(1);
    expect(got[0]!.info).toEqual(NONE);
    expect(w.netvsp.counters.rxCompletionsFailed).toBe(0);
  });

  it("an area that ends at the range's last byte is copied (offset == rpkt_len - len)", () => {
    const { w, dev, got } = setup();
    // the frame first, the area after it
    const area = [...vlan(), ...csum(), ...hash(), ...pktinfo()];
    const msg = message([], 100);
    const full = new Uint8Array(msg.length + area.length);
    full.set(msg);
    full.set(area, msg.length);
    const dv = new DataView(full.buffer);
    dv.setUint32(4, full.length, true);
    dv.setUint32(28, msg.length - 8, true);
    dv.setUint32(32, area.length, true);
    const c = receive(w, dev, full);
    expect(c.ppiCopies).toBe(4);
    expect(c.ppiBytes).toBe(4 * area.length);
    expect(got[0]!.info.vlan).toBe(VLAN_WORD);
    expect(got[0]!.info.pktinfoFlag).toBe(0x06);
    expect(got[0]!.frame).toEqual(msg.subarray(44));
    expect(dev.stats.rxDrops.total).toBe(0);
  });
});

describe("rndis_get_ppi: four lookups, one copy each", () => {
  it("VLAN, checksum, hash and RSC info: 4 copies of the area, 4 reads of shared memory, values as the kernel takes them", () => {
    const { w, dev, got } = setup();
    const base = receive(w, dev, message([], 120));
    const area = [...pktinfo(), ...hash(), ...csum(), ...vlan()];
    const c = receive(w, dev, message(area, 120));
    expect(area.length).toBe(64);
    expect(c.ppiCopies).toBe(4);
    expect(c.ppiBytes).toBe(4 * 64);
    expect(c.rangeBytes).toBe(44 + 4 * 64);
    expect(c.sharedReads - base.sharedReads).toBe(4);
    expect(c.parsedFromShared).toBe(0);
    expect(got[1]!.info).toEqual({
      vlan: VLAN_WORD,
      vlanTci: 0x123 | (5 << 13) | 0x1000,
      csumInfo: CSUM_WORD,
      hash: HASH_WORD,
      pktinfoFlag: 0x06,
    });
    expect(got[1]!.frame).toEqual(message(area, 120).subarray(44 + 64));
    expect(dev.stats.rxDrops.total).toBe(0);
    expect(findings(w)).toEqual([]);
    dev.remove();
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("lookups that find nothing still copy; an internal entry is not the external type of the same number", () => {
    const { w, dev, got } = setup();
    // type 1 without the internal bit is IPSEC_PKTINFO, not PKTINFO_T; type 6 internal is not VLAN
    const area = [...entry(PKTINFO_T, PKTINFO), ...entry(VLAN_T, u32(VLAN_WORD), { internal: true })];
    const c = receive(w, dev, message([...area, ...hash()], 100));
    expect(c.ppiCopies).toBe(4);
    expect(got[0]!.info).toEqual({ ...NONE, hash: HASH_WORD });
  });

  it("the first entry of a type wins; a payload offset past 12 is honoured", () => {
    const { w, dev, got } = setup();
    const area = [...entry(HASH_T, u32(0x1111_1111), { at: 20 }), ...hash(0x2222_2222)];
    receive(w, dev, message(area, 100));
    expect(got[0]!.info.hash).toBe(0x1111_1111);
  });

  it("entries are checked only as far as each walk goes: a bad entry after all four types is never reached", () => {
    const { w, dev, got } = setup();
    // size 100 does not fit the 12 bytes left: a walk that got there would spin
    const bad = [...u32(100), ...u32(IPSEC_T), ...u32(12)];
    const c = receive(w, dev, message([...vlan(), ...csum(), ...hash(), ...pktinfo(), ...bad], 100));
    expect(c.ppiCopies).toBe(4);
    expect(got[0]!.info.pktinfoFlag).toBe(0x06);
    expect(dev.stats.rxDrops.total).toBe(0);
    expect(findings(w)).toEqual([]);
  });
});

describe("rndis_get_ppi: where the kernel's walk would spin", () => {
  it("a bad entry after the VLAN: lookup 2 spins; the model stops there (2 copies), reports it, delivers the frame", () => {
    const { w, dev, got } = setup();
    const bad = [...u32(16), ...u32(IPSEC_T), ...u32(16), 0, 0, 0, 0]; // ppi_offset == size
    const c = receive(w, dev, message([...vlan(), ...bad, ...csum()], 100));
    expect(c.ppiCopies).toBe(2);
    expect(c.ppiBytes).toBe(2 * 48);
    expect(got).toHaveLength(1);
    expect(got[0]!.info).toEqual({ ...NONE, vlan: VLAN_WORD, vlanTci: 0xb123 });
    expect(dev.stats.rxDrops.get("ppi-entry-offset-invalid")).toBe(1);
    expectOnlyFinding(w, NETVSC_FINDING.ppiLookupSpins, "termination", "lookup 2 of 4", "at byte 60");
  });

  it("a VLAN entry too small for ndis_pkt_8021q_info: the first lookup spins, after one copy", () => {
    const { w, dev, got } = setup();
    const c = receive(w, dev, message([...entry(VLAN_T, [1, 2, 0, 0], { size: 15 }), 0, ...csum()], 100));
    expect(c.ppiCopies).toBe(1);
    expect(got[0]!.info).toEqual(NONE);
    expect(dev.stats.rxDrops.get("ppi-entry-too-small")).toBe(1);
    expect(w.conn.kernel.findings.count(NETVSC_FINDING.ppiLookupSpins)).toBe(1);
  });

  it("a truncated last entry is not a spin: every lookup copies, the reason is counted once", () => {
    const { w, dev, got } = setup();
    const c = receive(w, dev, message([...vlan(), 0, 0, 0, 0], 100));
    expect(c.ppiCopies).toBe(4);
    expect(got[0]!.info.vlan).toBe(VLAN_WORD);
    expect(dev.stats.rxDrops.get("ppi-entry-truncated")).toBe(1);
    expect(findings(w)).toEqual([]);
  });
});

describe("rndis_get_ppi: a host that rewrites the area between lookups (double fetch)", () => {
  /**
   * The netvsp's scheduler runs only between the guest's polls, never inside one receive, so a host on
   * another vCPU is simulated here: right after the guest's first read of the PPI area from shared
   * memory, the host rewrites the area in its receive buffer.
   */
  function racing(w: World, areaLen: number, replacement: Uint8Array): () => number {
    const mmu = w.memory.mmu;
    const read = mmu.read.bind(mmu);
    let fetches = 0;
    mmu.read = (va: number, dst: Uint8Array): void => {
      read(va, dst);
      if (dst.length !== areaLen || !mmu.translate(va).shared) return;
      if (fetches++ === 0) {
        const recv = w.netvsp.recvBuffer!;
        for (let s = 0; s < recv.sectionCount; s++)
          w.netvsp.rewriteRecvBuffer(s * recv.sectionSize + 44, replacement);
      }
    };
    return () => fetches;
  }

  it("the VLAN found in copy 1 is read from copy 4: it aliases the checksum the host put there", () => {
    const { w, dev, got } = setup();
    // copy 1: [VLAN, checksum]; from copy 2 on: [checksum, VLAN'] (the types swapped). A 5-byte
    // checksum payload makes the area 33 bytes, a length no other shared read of this receive has.
    const first = [...vlan(), ...entry(CSUM_T, [...u32(CSUM_WORD), 0])];
    const later = new Uint8Array([...entry(CSUM_T, [...u32(0x0000_0011), 0]), ...vlan(0x0000_0fff)]);
    expect(later.length).toBe(33);
    const fetches = racing(w, first.length, later);
    const c = receive(w, dev, message(first, 100));
    expect(fetches()).toBe(4);
    expect(c.ppiCopies).toBe(4);
    expect(c.parsedFromShared).toBe(0);
    // Lookup 1 validated a VLAN at the first payload; rsc_add_data reads it after copy 4, where the
    // checksum now is. The checksum lookup found its entry there too.
    expect(got[0]!.info.vlan).toBe(0x0000_0011);
    expect(got[0]!.info.csumInfo).toBe(0x0000_0011);
    expect(dev.stats.rxPpiDoubleFetches).toBe(1);
    expectOnlyFinding(w, NETVSC_FINDING.ppiDoubleFetch, "I3", "before lookup 2's copy");
  });

  it("an area rewritten with the same bytes: four copies, no finding", () => {
    const { w, dev, got } = setup();
    const area = [...vlan(), ...csum()];
    racing(w, area.length, new Uint8Array(area));
    expect(receive(w, dev, message(area, 100)).ppiCopies).toBe(4);
    expect(got[0]!.info.vlan).toBe(VLAN_WORD);
    expect(dev.stats.rxPpiDoubleFetches).toBe(0);
    expect(findings(w)).toEqual([]);
  });
});

describe("the default host sends no PPIs", () => {
  it("1,000 frames: no PPI copy, 44 bytes copied per range", () => {
    const { w, dev, got } = setup();
    const before = snapshot(w, dev);
    const copies0 = dev.stats.rxRangeCopies;
    w.netvsp.queueRx(Array.from({ length: 1000 }, (_, i) => 64 + (i % 1400)));
    w.scheduler.runIdle();
    expect(got).toHaveLength(1000);
    expect(got.every((g) => g.info.vlan === null && g.info.hash === null)).toBe(true);
    expect(dev.stats.rxPpiCopies - before.ppiCopies).toBe(0);
    expect(dev.stats.rxRangeBytes - before.rangeBytes).toBe(44 * (dev.stats.rxRangeCopies - copies0));
  });
});
