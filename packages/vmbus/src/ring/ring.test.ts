import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { VmbusError, VmbusInvariantError } from "../errors.js";
import { HostRingEndpoint } from "../host/ring-endpoint.js";
import { ringPair, sameBytes } from "../testing/pair.js";
import { fillRandom, xorshift32 } from "../testing/rng.js";
import {
  decodeGpaDirectPacket,
  encodeCompletionPacket,
  encodeInbandPacket,
  encodeMpbDescriptor,
  mpbRangesFromPageBuffers,
  readPacketDescriptor,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
  VMBUS_RQST_ERROR,
} from "../wire/packet.js";
import { RING_HEADER } from "../wire/ring-header.js";
import { IncomingRing, type IndexPolicy } from "./incoming.js";
import { OutgoingRing } from "./outgoing.js";
import { FlatRingMem, initRingHeader, type RingMem } from "./ring-mem.js";

/** Counts the reads a RingMem sees, to show a wrapping packet costs one linear copy. */
class CountingMem implements RingMem {
  readonly reads: number[] = [];
  readonly inner: FlatRingMem;
  constructor(inner: FlatRingMem) {
    this.inner = inner;
  }
  get dataSize(): number {
    return this.inner.dataSize;
  }
  readHeaderU32(f: Parameters<RingMem["readHeaderU32"]>[0]): number {
    return this.inner.readHeaderU32(f);
  }
  writeHeaderU32(f: Parameters<RingMem["writeHeaderU32"]>[0], v: number): void {
    this.inner.writeHeaderU32(f, v);
  }
  read(o: number, dst: Uint8Array): void {
    this.reads.push(dst.length);
    this.inner.read(o, dst);
  }
  write(o: number, src: Uint8Array): void {
    this.inner.write(o, src);
  }
}

function placeIndices(mem: RingMem, at: number): void {
  mem.writeHeaderU32(RING_HEADER.WRITE_INDEX, at);
  mem.writeHeaderU32(RING_HEADER.READ_INDEX, at);
}

describe("outgoing ring (hv_ringbuffer_write)", () => {
  it("writes a packet across the ring end and the host reads it back in one linear copy", () => {
    const { outMem, guestOut } = ringPair(4096);
    placeIndices(outMem, 4096 - 32);
    const counting = new CountingMem(outMem);
    const host = new HostRingEndpoint({ fromGuest: counting, toGuest: new FlatRingMem(4096) });
    const payload = Uint8Array.from({ length: 100 }, (_, i) => (i * 7) & 0xff);
    const w = guestOut.sendPacket(payload, { type: VM_PKT.DATA_INBAND, flags: 0, requestId: 42n });
    expect(w).toMatchObject({ ok: true, value: { transId: 42n, signal: true } });
    // 16 + 100 → 120 padded, + 8 trailer = 128; wrapped past 4096
    expect(outMem.readHeaderU32(RING_HEADER.WRITE_INDEX)).toBe(128 - 32);
    const r = host.readPacket();
    expect(r.kind).toBe("packet");
    if (r.kind !== "packet") return;
    expect(counting.reads).toEqual([16, 120, 8]); // descriptor peek, the packet, the trailer
    expect(r.packet.offset).toBe(4064);
    expect(sameBytes(r.packet.data.subarray(0, 100), payload)).toBe(true);
    expect(r.packet.data.subarray(100).every((b) => b === 0)).toBe(true);
    expect(r.packet.desc).toEqual({ type: VM_PKT.DATA_INBAND, offset8: 2, len8: 15, flags: 0, transId: 42n });
    expect(host.counters.trailerMismatch).toBe(0);
  });

  it("never fills the ring exactly: avail <= total is EAGAIN, and a drain recovers", () => {
    const { outMem, guestOut, host } = ringPair(256);
    // Packets of 48 bytes + 8 trailer = 56. 256 = 4·56 + 32: four fit, the fifth does not.
    const payload = new Uint8Array(32);
    for (let i = 0; i < 4; i++) expect(guestOut.sendPacket(payload, { type: 6, flags: 0 }).ok).toBe(true);
    const full = guestOut.sendPacket(payload, { type: 6, flags: 0 });
    expect(full).toMatchObject({ ok: false, error: { code: "EAGAIN", reason: "ring-full" } });
    // exactly-fitting packet: 32 bytes free, packet of 24 + 8 = 32 → still EAGAIN (strict <=)
    const exact = guestOut.sendPacket(new Uint8Array(8), { type: 6, flags: 0 });
    expect(exact).toMatchObject({ ok: false, error: { code: "EAGAIN" } });
    // one byte smaller fits: 16 + 0 + 8 = 24 < 32
    expect(guestOut.sendPacket(new Uint8Array(0), { type: 6, flags: 0 }).ok).toBe(true);
    expect(guestOut.counters.outFullTotal).toBe(2);
    expect(guestOut.counters.outFullFirst).toBe(1);
    let n = 0;
    for (let r = host.readPacket(); r.kind === "packet"; r = host.readPacket()) n++;
    expect(n).toBe(5);
    host.commitRead();
    expect(outMem.readHeaderU32(RING_HEADER.READ_INDEX)).toBe(outMem.readHeaderU32(RING_HEADER.WRITE_INDEX));
    expect(guestOut.sendPacket(payload, { type: 6, flags: 0 }).ok).toBe(true);
  });

  it("signals only on empty → non-empty and only when interrupt_mask is clear", () => {
    const { outMem, guestOut, host } = ringPair(1024);
    const p = new Uint8Array(8);
    expect(guestOut.sendPacket(p, { type: 6, flags: 0 })).toMatchObject({
      ok: true,
      value: { signal: true },
    });
    expect(guestOut.sendPacket(p, { type: 6, flags: 0 })).toMatchObject({
      ok: true,
      value: { signal: false },
    });
    host.readPacket();
    host.readPacket();
    host.commitRead();
    outMem.writeHeaderU32(RING_HEADER.INTERRUPT_MASK, 1);
    expect(guestOut.sendPacket(p, { type: 6, flags: 0 })).toMatchObject({
      ok: true,
      value: { signal: false },
    });
    expect(guestOut.counters.signals).toBe(1);
  });

  it("allocates the request id after the copy and writes it into the ring's trans_id", () => {
    const { guestOut, host, table } = ringPair(1024, 2);
    const req = { type: 6, flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED } as const;
    expect(guestOut.sendPacket(new Uint8Array(4), { ...req, ctx: 100 })).toMatchObject({
      ok: true,
      value: { transId: 1n },
    });
    expect(guestOut.sendPacket(new Uint8Array(4), { ...req, ctx: 101 })).toMatchObject({
      ok: true,
      value: { transId: 2n },
    });
    const before = guestOut.mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    expect(guestOut.sendPacket(new Uint8Array(4), { ...req, ctx: 102 })).toMatchObject({
      ok: false,
      error: { code: "EAGAIN", reason: "request-table-full" },
    });
    expect(guestOut.mem.readHeaderU32(RING_HEADER.WRITE_INDEX)).toBe(before);
    // without COMPLETION_REQUESTED the caller's id goes out untouched and no slot is used
    expect(guestOut.sendPacket(new Uint8Array(4), { type: 6, flags: 0, requestId: 9n })).toMatchObject({
      ok: true,
      value: { transId: 9n },
    });
    const ids: bigint[] = [];
    for (let r = host.readPacket(); r.kind === "packet"; r = host.readPacket())
      ids.push(r.packet.desc.transId);
    expect(ids).toEqual([1n, 2n, 9n]);
    expect(table.outstanding).toBe(2);
  });

  it("fails with ENODEV once the channel is rescinded", () => {
    const { guestOut } = ringPair(1024);
    guestOut.rescinded = true;
    expect(guestOut.sendPacket(new Uint8Array(1), { type: 6, flags: 0 })).toMatchObject({
      ok: false,
      error: { code: "ENODEV" },
    });
  });

  it("refuses to write through a corrupt shared index", () => {
    const { outMem, guestOut } = ringPair(1024);
    outMem.writeHeaderU32(RING_HEADER.READ_INDEX, 4096);
    expect(guestOut.sendPacket(new Uint8Array(1), { type: 6, flags: 0 })).toMatchObject({
      ok: false,
      error: { code: "EIO", reason: "corrupt-ring" },
    });
    outMem.writeHeaderU32(RING_HEADER.READ_INDEX, 0);
    outMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 12);
    expect(guestOut.sendPacket(new Uint8Array(1), { type: 6, flags: 0 }).ok).toBe(false);
    expect(guestOut.counters.corrupt).toEqual({ "out-of-range": 1, misaligned: 1 });
  });
});

describe("incoming ring (hv_pkt_iter_first/next/close)", () => {
  function hostWrite(mem: FlatRingMem, at: number, bytes: Uint8Array): number {
    mem.write(at, bytes);
    return at + bytes.length;
  }

  it("reads a host packet that wraps the ring end with one linear copy", () => {
    const { inMem, host } = ringPair(4096);
    placeIndices(inMem, 4096 - 16);
    const counting = new CountingMem(inMem);
    const reader = new IncomingRing(counting);
    const payload = Uint8Array.from({ length: 60 }, (_, i) => 255 - i);
    expect(host.sendCompletion(7n, payload).ok).toBe(true);
    const r = reader.first();
    expect(r.kind).toBe("packet");
    if (r.kind !== "packet") return;
    expect(counting.reads).toEqual([16, 80]);
    expect(r.packet.desc).toMatchObject({ type: VM_PKT.COMP, transId: 7n, len8: 10, offset8: 2 });
    expect(sameBytes(r.packet.data.subarray(0, 60), payload)).toBe(true);
    expect(reader.next().kind).toBe("empty");
    expect(reader.privateReadIndex).toBe(72);
  });

  it("copies before parsing: rewriting the ring afterwards changes nothing the guest holds", () => {
    const { inMem, host, guestIn } = ringPair(1024);
    host.sendInband(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 3n);
    const r = guestIn.first();
    if (r.kind !== "packet") throw new Error("expected a packet");
    inMem.doubled.fill(0xee);
    expect(Array.from(r.packet.data)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(r.packet.desc.len8).toBe(3);
  });

  it("clamps host lengths and offsets exactly as the kernel does, and counts each reason", () => {
    const { inMem, guestIn } = ringPair(1024);
    const pkt = encodeInbandPacket(6, 0, 1n, new Uint8Array(16)); // 32 bytes
    const v = new DataView(pkt.buffer);
    let w = 0;
    // 1: len8 = 1 (< 16 bytes) → len = cap; offset8 = 0 → 16
    v.setUint16(4, 1, true);
    v.setUint16(2, 0, true);
    w = hostWrite(inMem, w, pkt);
    w = hostWrite(inMem, w, new Uint8Array(8));
    inMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, w);
    let r = guestIn.first();
    expect(r.kind === "packet" && r.packet.desc).toMatchObject({ len8: 5, offset8: 2 }); // cap = avail = 40
    expect(guestIn.counters.clamps).toMatchObject({ "len-too-short": 1, "offset-too-short": 1 });

    // 2: len8 far beyond what is available → cap; offset8 past len → 16
    const r2 = ringPair(1024);
    v.setUint16(4, 0xffff, true);
    v.setUint16(2, 0xfff, true);
    r2.inMem.write(0, pkt);
    r2.inMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 40);
    r = r2.guestIn.first();
    expect(r.kind === "packet" && r.packet.desc).toMatchObject({ len8: 5, offset8: 2 });
    expect(r2.guestIn.counters.clamps).toMatchObject({ "len-too-long": 1, "offset-past-len": 1 });

    // 3: oversize packets are silently truncated to pkt_buffer_size (the 4096 → 4080 quirk)
    const r3 = ringPair(16384);
    const big = encodeInbandPacket(6, 0, 1n, new Uint8Array(5000));
    r3.inMem.write(0, big);
    r3.inMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, big.length + 8);
    r = r3.guestIn.first();
    expect(r.kind === "packet" && r.packet.bytes.length).toBe(4096);
    expect(r3.guestIn.counters.clamps["len-too-long"]).toBe(1);
  });

  it("treats a write index outside the ring or misaligned as corrupt (typed, counted)", () => {
    const { inMem, guestIn } = ringPair(1024);
    inMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 5000);
    expect(guestIn.first()).toEqual({ kind: "corrupt", problem: "out-of-range", writeIndex: 5000 });
    inMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 36);
    expect(guestIn.first()).toMatchObject({ kind: "corrupt", problem: "misaligned" });
    const d = guestIn.drain(() => {});
    expect(d).toMatchObject({ ok: false, error: { code: "EIO" } });
    expect(guestIn.counters.corrupt).toEqual({ "out-of-range": 1, misaligned: 2 });
    // under the "linux" policy the kernel's arithmetic runs on the bad index; reads stay in bounds
    const linux = ringPair(1024, 4, { indexPolicy: "linux" });
    linux.inMem.writeHeaderU32(RING_HEADER.WRITE_INDEX, 0xffff_fff0);
    const n = linux.guestIn.drain(() => {});
    expect(n.ok).toBe(true);
    expect(linux.guestIn.counters.corrupt["out-of-range"]).toBeGreaterThan(0);
  });

  it("signals the host on close only when this batch made room for its pending send", () => {
    const { inMem, host, guestIn } = ringPair(256);
    const p = new Uint8Array(32); // 56 bytes per packet with trailer
    for (let i = 0; i < 4; i++) expect(host.sendInband(p, BigInt(i)).ok).toBe(true);
    expect(host.sendInband(p, 9n).ok).toBe(false); // full; host asks for 56 bytes
    host.writer.setPendingSendSize(56);
    // free space now 32 ≤ 56: reading one packet gives 88 > 56 → signal
    let r = guestIn.first();
    expect(r.kind).toBe("packet");
    r = guestIn.next();
    expect(guestIn.close()).toEqual({ signal: true });
    // the host was no longer blocked before this batch: no second signal
    guestIn.next();
    expect(guestIn.close()).toEqual({ signal: false });
    inMem.writeHeaderU32(RING_HEADER.FEATURE_BITS, 0);
    guestIn.first();
    guestIn.next();
    expect(guestIn.close()).toEqual({ signal: false });
    expect(guestIn.counters.signals).toBe(1);
  });

  it("recvPacket reports ENOBUFS-style too-small with the real length and leaves the packet", () => {
    const { host, guestIn } = ringPair(1024);
    host.sendInband(new Uint8Array(40), 5n);
    expect(guestIn.recvPacket(new Uint8Array(8))).toEqual({ kind: "too-small", length: 40, transId: 5n });
    const dst = new Uint8Array(64);
    expect(guestIn.recvPacket(dst)).toEqual({ kind: "ok", length: 40, transId: 5n });
    expect(guestIn.recvPacket(dst)).toEqual({ kind: "empty" });
  });
});

describe("round trip", () => {
  it("moves 100k packets of random sizes both ways through small rings, every byte checked", () => {
    const { guestOut, guestIn, host, table } = ringPair(8192, 256);
    const rnd = xorshift32(0xc0ffee);
    const sent: Uint8Array[] = [];
    let hostSeen = 0;
    let completions = 0;
    const scratch = new Uint8Array(2048);
    const TOTAL = 100_000;

    const hostService = () => {
      for (let r = host.readPacket(); r.kind === "packet"; r = host.readPacket()) {
        const expected = sent[hostSeen++]!;
        if (!sameBytes(r.packet.data.subarray(0, expected.length), expected))
          throw new Error(`packet ${hostSeen} differs`);
        if (r.packet.data.subarray(expected.length).some((b) => b !== 0)) throw new Error("padding not zero");
        // echo the first 8 bytes back as the completion, for the request id the guest allocated
        for (;;) {
          const c = host.sendCompletion(
            r.packet.desc.transId,
            r.packet.data.subarray(0, Math.min(8, expected.length)),
          );
          if (c.ok) break;
          guestService();
        }
      }
      host.commitRead();
    };
    const guestService = () => {
      guestIn.drain((pkt) => {
        const done = table.complete(pkt.desc.transId);
        if (!done.ok) throw new Error(`bad completion ${pkt.desc.transId}`);
        const expected = sent[done.value]!;
        const n = Math.min(8, expected.length);
        if (!sameBytes(pkt.data.subarray(0, n), expected.subarray(0, n)))
          throw new Error("completion payload");
        completions++;
      });
    };

    for (let i = 0; i < TOTAL; i++) {
      const len = rnd() % 1500;
      const payload = scratch.subarray(0, len);
      fillRandom(payload, rnd);
      sent.push(payload.slice());
      for (;;) {
        const w = guestOut.sendPacket(payload, { type: VM_PKT.DATA_INBAND, flags: 1, ctx: i });
        if (w.ok) break;
        expect(w.error.code).toBe("EAGAIN");
        hostService();
        guestService();
      }
    }
    hostService();
    guestService();
    expect(hostSeen).toBe(TOTAL);
    expect(completions).toBe(TOTAL);
    expect(table.outstanding).toBe(0);
    expect(host.counters.trailerMismatch).toBe(0);
    expect(guestOut.counters.packets).toBe(TOTAL);
    expect(Object.values(guestIn.counters.clamps).every((c) => c === 0)).toBe(true);
  });

  it("routes forged and duplicate completions to VMBUS_RQST_ERROR without disturbing real ones", () => {
    const { guestOut, guestIn, host, table } = ringPair(4096, 8);
    guestOut.sendPacket(new Uint8Array(8), { type: 6, flags: 1, ctx: 0 });
    const r = host.readPacket();
    if (r.kind !== "packet") throw new Error("expected packet");
    host.sendCompletion(r.packet.desc.transId, new Uint8Array(0));
    host.sendCompletion(r.packet.desc.transId, new Uint8Array(0)); // duplicate
    host.sendCompletion(0n, new Uint8Array(0)); // unsolicited id 0
    host.sendCompletion(VMBUS_RQST_ERROR, new Uint8Array(0)); // forged
    const results: string[] = [];
    guestIn.drain((pkt) => {
      const c = table.complete(pkt.desc.transId);
      results.push(c.ok ? "ok" : c.error.reason);
    });
    expect(results).toEqual(["ok", "not-outstanding", "zero-id", "out-of-range"]);
    expect(table.rejected).toMatchObject({ "not-outstanding": 1, "zero-id": 1, "out-of-range": 1 });
  });
});

describe("hostile ring bytes (property)", () => {
  const ringBytes = fc
    .record({
      dataSize8: fc.integer({ min: 3, max: 96 }),
      writeIndex: fc.oneof(fc.integer({ min: 0, max: 800 }), fc.nat()),
      readIndex: fc.oneof(fc.integer({ min: 0, max: 800 }), fc.nat()),
      pendingSendSz: fc.nat(),
      interruptMask: fc.nat(),
      featureBits: fc.nat(),
      data: fc.uint8Array({ minLength: 768, maxLength: 768 }),
      policy: fc.constantFrom<IndexPolicy>("reject", "linux"),
      pktBufferSize: fc.constantFrom(16, 64, 4096),
    })
    .map((r) => ({ ...r, dataSize: r.dataSize8 * 8 }));

  function load(r: {
    dataSize: number;
    writeIndex: number;
    readIndex: number;
    pendingSendSz: number;
    interruptMask: number;
    featureBits: number;
    data: Uint8Array;
  }): FlatRingMem {
    const m = new FlatRingMem(r.dataSize);
    m.write(0, r.data.subarray(0, r.dataSize));
    m.writeHeaderU32(RING_HEADER.WRITE_INDEX, r.writeIndex);
    m.writeHeaderU32(RING_HEADER.READ_INDEX, r.readIndex);
    m.writeHeaderU32(RING_HEADER.PENDING_SEND_SZ, r.pendingSendSz);
    m.writeHeaderU32(RING_HEADER.INTERRUPT_MASK, r.interruptMask);
    m.writeHeaderU32(RING_HEADER.FEATURE_BITS, r.featureBits);
    return m;
  }

  test.prop([ringBytes], { numRuns: 3000 })(
    "the guest reader stays inside the ring, terminates, and reports only typed errors",
    (r) => {
      const m = load(r);
      const reader = new IncomingRing(m, { indexPolicy: r.policy, pktBufferSize: r.pktBufferSize });
      let seen = 0;
      const res = reader.drain((p) => {
        seen++;
        expect(p.bytes.length).toBeLessThanOrEqual(Math.min(r.pktBufferSize, r.dataSize));
        expect(p.desc.offset8 * 8).toBeGreaterThanOrEqual(16);
        expect(p.desc.offset8 * 8).toBeLessThanOrEqual(p.bytes.length);
      });
      if (!res.ok) expect(res.error).toBeInstanceOf(VmbusError);
      expect(seen).toBeLessThanOrEqual(Math.ceil(r.dataSize / 24) + 1);
      expect(reader.privateReadIndex).toBeLessThan(r.dataSize);
      const dst = new Uint8Array(64);
      const rr = reader.recvPacket(dst);
      expect(["ok", "empty", "corrupt", "too-small"]).toContain(rr.kind);
    },
  );

  test.prop([ringBytes], { numRuns: 3000 })(
    "the host reader and the writers never throw on hostile indices",
    (r) => {
      const from = load(r);
      const to = load(r);
      const host = new HostRingEndpoint({ fromGuest: from, toGuest: to });
      for (let i = 0; i < r.dataSize / 24 + 2; i++) {
        const p = host.readPacket();
        if (p.kind !== "packet") break;
        expect(p.packet.bytes.length).toBeLessThan(r.dataSize);
      }
      host.commitRead();
      const w = host.sendCompletion(1n, new Uint8Array(3));
      if (!w.ok) expect(w.error).toBeInstanceOf(VmbusError);
      const guest = new OutgoingRing(from);
      const g = guest.sendPacket(new Uint8Array(5), { type: 6, flags: 1 });
      if (!g.ok) expect(g.error).toBeInstanceOf(VmbusError);
    },
  );

  test.prop(
    [
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 64 }),
      fc.integer({ min: 2, max: 40 }),
    ],
    { numRuns: 500 },
  )(
    "a host rewriting shared bytes between guest reads cannot make the reader misbehave",
    (edits, packets) => {
      const inner = new FlatRingMem(512);
      initRingHeader(inner);
      const writer = new OutgoingRing(inner);
      for (let i = 0; i < packets; i++) {
        if (!writer.sendPacket(new Uint8Array(i % 24), { type: 6, flags: 0, requestId: BigInt(i) }).ok) break;
      }
      let k = 0;
      // Before every guest access, the host flips one byte of the header or the data.
      const hostile: RingMem = {
        dataSize: inner.dataSize,
        readHeaderU32: (f) => {
          poke();
          return inner.readHeaderU32(f);
        },
        writeHeaderU32: (f, v) => inner.writeHeaderU32(f, v),
        read: (o, dst) => {
          poke();
          inner.read(o, dst);
        },
        write: (o, src) => inner.write(o, src),
      };
      function poke(): void {
        const [where, value] = edits[k++ % edits.length]!;
        if (where % 3 === 0) inner.header[where % 16] = value;
        else inner.write(where % 512, new Uint8Array([value]));
      }
      const reader = new IncomingRing(hostile);
      const res = reader.drain(() => {});
      if (!res.ok) expect(res.error).toBeInstanceOf(VmbusError);
      expect(reader.privateReadIndex).toBeLessThan(512);
    },
  );
});

describe("packets built by hand", () => {
  it("sends an mpb GPA-direct packet with its data and the host parses ranges and data", () => {
    const { guestOut, host } = ringPair(4096, 4);
    const ranges = mpbRangesFromPageBuffers([
      { pfn: 0x500, offset: 4000, len: 96 },
      { pfn: 0x501, offset: 0, len: 100 },
    ]);
    const data = Uint8Array.from({ length: 13 }, (_, i) => i + 1);
    const desc = encodeMpbDescriptor(ranges, data.length);
    const w = guestOut.sendWithDescriptor(desc, data, VMBUS_RQST_ERROR, 7);
    expect(w).toMatchObject({ ok: true, value: { transId: 1n } });
    const r = host.readPacket();
    if (r.kind !== "packet") throw new Error("expected packet");
    const g = decodeGpaDirectPacket(r.packet.bytes);
    expect(g.ok).toBe(true);
    if (!g.ok) return;
    expect(g.value.desc.transId).toBe(1n);
    expect(g.value.ranges).toHaveLength(1);
    expect(Array.from(g.value.ranges[0]!.pfns)).toEqual([0x500, 0x501]);
    expect(Array.from(g.value.data.subarray(0, 13))).toEqual(Array.from(data));
    expect(g.value.data.subarray(13).every((b) => b === 0)).toBe(true);
  });

  it("a completion written by the host is parsed from the private copy", () => {
    const { host, guestIn } = ringPair(1024);
    const c = encodeCompletionPacket(3n, new Uint8Array([1]));
    expect(host.send(c).ok).toBe(true);
    const r = guestIn.first();
    expect(r.kind === "packet" && readPacketDescriptor(r.packet.bytes).transId).toBe(3n);
  });
});

describe("transaction ids as numbers below 2^53", () => {
  it("an inbound trans_id reads as a number below 2^53 and as -1 above, desc.transId exact either way", () => {
    const { guestIn, host } = ringPair(4096);
    const ids = [7n, 2n ** 53n - 1n, 2n ** 53n, 0xffff_ffff_ffff_fffen];
    for (const id of ids) expect(host.sendCompletion(id, new Uint8Array(0)).ok).toBe(true);
    const seen: [number, bigint][] = [];
    guestIn.drain((p) => seen.push([p.transIdNumber, p.desc.transId]));
    expect(seen).toEqual([
      [7, 7n],
      [2 ** 53 - 1, 2n ** 53n - 1n],
      [-1, 2n ** 53n],
      [-1, 0xffff_ffff_ffff_fffen],
    ]);
  });

  it("a number requestId and a bigint one put the same 8 bytes on the wire", () => {
    const { guestOut, host } = ringPair(4096);
    const sent: bigint[] = [];
    for (const requestId of [0x1234_5678_9abcn, 0x1234_5678_9abc, VMBUS_RQST_ERROR]) {
      const w = guestOut.sendPacket(new Uint8Array(8), { type: VM_PKT.DATA_INBAND, flags: 0, requestId });
      expect(w.ok).toBe(true);
      const r = host.readPacket();
      if (r.kind === "packet") sent.push(r.packet.desc.transId);
    }
    expect(sent).toEqual([0x1234_5678_9abcn, 0x1234_5678_9abcn, VMBUS_RQST_ERROR]);
  });

  it("the request table completes a number id as it completes the bigint, and refuses the same ids", () => {
    const { table, guestOut } = ringPair(4096);
    const w = guestOut.sendPacket(new Uint8Array(8), {
      type: VM_PKT.DATA_INBAND,
      flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
      ctx: 41,
    });
    expect(w.ok && w.value.transId).toBe(1n);
    expect(table.isOutstanding(1)).toBe(true);
    expect(table.complete(0)).toMatchObject({ ok: false, error: { reason: "zero-id" } });
    expect(table.complete(65)).toMatchObject({ ok: false, error: { reason: "out-of-range" } });
    expect(table.complete(1)).toEqual({ ok: true, value: 41 });
    expect(table.complete(1n)).toMatchObject({ ok: false, error: { reason: "not-outstanding" } });
    expect(table.rejected).toEqual({ "zero-id": 1, "out-of-range": 1, "not-outstanding": 1, mismatch: 0 });
    // A number id is the caller's promise that the value fits: anything else is a model bug.
    expect(() => table.complete(2 ** 53)).toThrow(VmbusInvariantError);
    expect(() => table.complete(-1)).toThrow(VmbusInvariantError);
  });

  it("a write result is the ring's one object, refilled by the next write", () => {
    const { guestOut } = ringPair(4096);
    const a = guestOut.sendPacket(new Uint8Array(8), { type: VM_PKT.DATA_INBAND, flags: 0, requestId: 5n });
    expect(a.ok && a.value.transId).toBe(5n);
    const b = guestOut.sendPacket(new Uint8Array(8), { type: VM_PKT.DATA_INBAND, flags: 0, requestId: 6 });
    expect(b.ok && b.value.transId).toBe(6n);
    expect(a.ok && b.ok && a.value === b.value).toBe(true);
  });
});
