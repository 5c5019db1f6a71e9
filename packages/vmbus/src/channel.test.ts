import { PAGE_SIZE } from "@ivm/memory";
import { describe, expect, it } from "vitest";
import { REQUESTOR_TAG, type VmbusChannel } from "./channel.js";
import { HV_NIC_GUID } from "./channel-offer.js";
import { MAX_CHANNEL_RELIDS } from "./connection.js";
import type { HostDevice } from "./host/server.js";
import { RING_TAGS } from "./ring/ring-buffer.js";
import { sameBytes } from "./testing/pair.js";
import { fillRandom, xorshift32 } from "./testing/rng.js";
import { connectNic, ERAS, makeWorld, RecordingDevice, type World } from "./testing/world.js";
import { CHANNELMSG } from "./wire/channel-message.js";
import {
  decodeGpaDirectPacket,
  mpbRangesFromPageBuffers,
  VM_PKT,
  VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
} from "./wire/packet.js";
import { RING_HEADER } from "./wire/ring-header.js";

const RING = 4 * PAGE_SIZE; // 4 pages per direction: a header and 12 KiB of data

function open<D extends HostDevice = RecordingDevice>(
  w: World,
  device: D = new RecordingDevice() as unknown as D,
  cb?: (c: VmbusChannel) => void,
) {
  const nic = connectNic(w, device);
  const r = nic.channel.open({
    sendRingSize: RING,
    recvRingSize: RING,
    requestTableSize: 64,
    ...(cb === undefined ? {} : { onChannelCallback: cb }),
  });
  if (!r.ok) throw r.error;
  return nic;
}

function payloadFor(rng: () => number, buf: Uint8Array): Uint8Array {
  const p = buf.subarray(0, rng() % 3000);
  fillRandom(p, rng);
  return p;
}

describe.each(ERAS)("channel open/close (%s)", (era) => {
  it("allocates one get_order block, maps the rings as the era does, and opens", () => {
    const w = makeWorld(era);
    const before = w.hyperv.hypervisor.counters.hypercalls;
    const { channel, host } = connectNic(w);
    // 3 + 3 pages: get_order(24 KiB) is an 8-page block, 2 pages of it unused.
    const r = channel.open({ sendRingSize: 3 * PAGE_SIZE, recvRingSize: 3 * PAGE_SIZE });
    expect(r.ok).toBe(true);
    expect(channel.state).toBe("opened");
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(8);
    // vmbus_connect makes the two monitor pages host-visible (one hypercall each), the ring GPADL one more.
    expect(w.hyperv.hypervisor.counters.hypercalls - before).toBe(era === "none" ? 0 : 2 + 1);
    const maps = w.memory.vmalloc.areas().filter((a) => a.tag === RING_TAGS.mapping);
    expect(maps.map((a) => a.frames.length)).toEqual([5, 5]); // 2n − 1 pages each
    const shared = maps[0]!.frames[0]! >= w.memory.vtomPfn && w.memory.vtomPfn > 0;
    expect(shared).toBe(era !== "none");
    expect(maps[0]!.kind).toBe(era === "address-bit" ? "ioremap" : "vmap");
    expect(maps[0]!.frames[1]).toBe(maps[0]!.frames[3]); // the data pages appear twice
    expect(host.state).toBe("open");
    expect(w.conn.posted(CHANNELMSG.OPENCHANNEL)).toBe(1);
    const ring = channel.outbound!.mem;
    expect(ring.readHeaderU32(RING_HEADER.FEATURE_BITS)).toBe(1);
    expect(ring.readHeaderU32(RING_HEADER.WRITE_INDEX)).toBe(0);
    expect(w.memory.mmu.totalFaults).toBe(0);
  });

  it("close tears the ring GPADL down, unmaps and frees the rings", () => {
    const w = makeWorld(era);
    const { channel, host, device } = open(w);
    const free = w.memory.buddy.nrFreePages;
    const slabs = w.memory.buddy.pagesOwnedBy("slab");
    const c = channel.close();
    expect(c).toEqual({ ok: true, value: { freed: true, leaked: false } });
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(w.memory.kmalloc.statsFor(REQUESTOR_TAG).live).toBe(0);
    // the 8 ring pages, plus the slab pages the request table's id array and bitmap emptied
    expect(w.memory.buddy.nrFreePages - free).toBe(8 + slabs - w.memory.buddy.pagesOwnedBy("slab"));
    expect(w.memory.vmalloc.areas().filter((a) => a.tag === RING_TAGS.mapping)).toEqual([]);
    expect(w.memory.kmalloc.statsFor(RING_TAGS.pktBuffer).live).toBe(0);
    w.scheduler.runIdle();
    expect(host.state).toBe("offered");
    expect(device.closed).toBe(1);
    expect(w.server.gpadls.establishedCount).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
    // It can be opened again.
    expect(channel.open({ sendRingSize: RING, recvRingSize: RING }).ok).toBe(true);
  });

  it("an open the host refuses is EAGAIN and gives everything back", () => {
    const w = makeWorld(era);
    const device = new RecordingDevice();
    device.openStatus = 1;
    const { channel } = connectNic(w, device);
    const r = channel.open({ sendRingSize: RING, recvRingSize: RING });
    expect(r.ok === false && r.error.code).toBe("EAGAIN");
    expect(channel.state).toBe("open-state");
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(w.server.gpadls.establishedCount).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("sends 100k packets of random sizes through a 4-page ring, every byte checked by the host", () => {
    const w = makeWorld(era);
    const device = new RecordingDevice();
    device.keep = false;
    const hostRng = xorshift32(7);
    const expected = new Uint8Array(4096);
    let received = 0;
    let mismatches = 0;
    device.onPacket = (p) => {
      const want = payloadFor(hostRng, expected);
      const got = p.data.subarray(0, want.length);
      if (p.data.length !== ((want.length + 7) & ~7) || !sameBytes(got, want)) mismatches++;
      if (p.desc.type !== VM_PKT.DATA_INBAND || p.desc.transId !== 5n) mismatches++;
      received++;
    };
    const { channel } = open(w, device);
    const rng = xorshift32(7);
    const scratch = new Uint8Array(4096);
    let full = 0;
    for (let i = 0; i < 100_000; i++) {
      const p = payloadFor(rng, scratch);
      for (;;) {
        const r = channel.sendPacket(p, { type: VM_PKT.DATA_INBAND, flags: 0, requestId: 5n });
        if (r.ok) break;
        expect(r.error.code).toBe("EAGAIN");
        full++;
        w.scheduler.runOnce();
      }
    }
    w.scheduler.runIdle();
    expect(received).toBe(100_000);
    expect(mismatches).toBe(0);
    expect(full).toBeGreaterThan(0);
    expect(channel.counters.signals).toBeGreaterThan(0);
    expect(w.memory.mmu.totalFaults).toBe(0);
    expect(w.hyperv.hostView.refused).toBe(0);
  });

  it("receives 100k host packets of random sizes, every byte checked by the guest", () => {
    const w = makeWorld(era, { maxRoundsPerWait: 1_000_000 });
    const hostRng = xorshift32(11);
    const scratch = new Uint8Array(4096);
    let sent = 0;
    let pending: Uint8Array | undefined;
    const sender: HostDevice = {
      poll(ch) {
        let n = 0;
        while (sent < 100_000) {
          pending ??= payloadFor(hostRng, scratch).slice();
          const r = ch.sendInband(pending, BigInt(sent));
          if (!r.ok) break;
          pending = undefined;
          sent++;
          n++;
        }
        return n > 0;
      },
    };
    const guestRng = xorshift32(11);
    const want = new Uint8Array(4096);
    let got = 0;
    let mismatches = 0;
    const { channel } = open(w, sender, (c) => {
      c.drain((p) => {
        const exp = payloadFor(guestRng, want);
        if (!sameBytes(p.data.subarray(0, exp.length), exp) || p.desc.transId !== BigInt(got)) {
          mismatches++;
        }
        got++;
      });
    });
    const r = w.scheduler.runUntil(() => got === 100_000, "100k packets");
    expect(r.ok ? "ok" : `${r.error.message} sent=${sent} got=${got}`).toBe("ok");
    expect(mismatches).toBe(0);
    expect(channel.counters.callbacks).toBeGreaterThan(0);
    expect(w.memory.mmu.totalFaults).toBe(0);
  });

  it("a packet that wraps the ring end arrives intact", () => {
    const w = makeWorld(era);
    const device = new RecordingDevice();
    const { channel } = open(w, device);
    const dsize = channel.outbound!.mem.dataSize;
    // One packet that leaves the write index 512 bytes before the end: 16 + payload + 8 = dsize − 512.
    const filler = new Uint8Array(dsize - 512 - 24);
    expect(channel.sendPacket(filler, { type: VM_PKT.DATA_INBAND, flags: 0 }).ok).toBe(true);
    w.scheduler.runIdle();
    const start = channel.outbound!.mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    const big = Uint8Array.from({ length: 2000 }, (_, i) => (i * 31 + 7) & 0xff);
    expect(channel.sendPacket(big, { type: VM_PKT.DATA_INBAND, flags: 0 }).ok).toBe(true);
    const end = channel.outbound!.mem.readHeaderU32(RING_HEADER.WRITE_INDEX);
    expect(end).toBeLessThan(start); // wrapped
    w.scheduler.runIdle();
    const last = device.packets.at(-1)!;
    expect(last.offset).toBe(start);
    expect(sameBytes(last.data.subarray(0, 2000), big)).toBe(true);
  });

  it("a full ring is EAGAIN, and the ring recovers once the host reads", () => {
    const w = makeWorld(era);
    const device = new RecordingDevice();
    device.paused = true;
    const { channel } = open(w, device);
    const p = new Uint8Array(1000);
    let n = 0;
    for (;;) {
      const r = channel.sendPacket(p, { type: VM_PKT.DATA_INBAND, flags: 0 });
      if (!r.ok) {
        expect(r.error.code).toBe("EAGAIN");
        break;
      }
      n++;
    }
    expect(n).toBe(11); // 1024 + 8 bytes each; 12 would leave the ring exactly full
    expect(channel.outbound!.counters.outFullTotal).toBe(1);
    device.paused = false;
    w.scheduler.runIdle();
    expect(device.packets.length).toBe(11);
    expect(channel.sendPacket(p, { type: VM_PKT.DATA_INBAND, flags: 0 }).ok).toBe(true);
  });

  it("request ids come from the guest table and completions release them", () => {
    const w = makeWorld(era);
    const device = new RecordingDevice();
    device.onPacket = (p, ch) => {
      ch.sendCompletion(p.desc.transId, new Uint8Array([9]));
    };
    const completed: unknown[] = [];
    const { channel } = open(w, device, (c) => {
      c.drain((p) => {
        const r = c.completeRequest(p.desc.transId);
        if (r.ok) completed.push(r.value);
      });
    });
    const r = channel.sendPacket(new Uint8Array(8), {
      type: VM_PKT.DATA_INBAND,
      flags: VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
      requestCtx: "ctx-1",
    });
    expect(r.ok && r.value.transId).toBe(1n);
    w.scheduler.runIdle();
    expect(completed).toEqual(["ctx-1"]);
    expect(channel.requestTable!.outstanding).toBe(0);
    expect(channel.completeRequest(1n).ok).toBe(false); // a duplicate completion
  });

  it("page-buffer and multi-page-buffer packets carry the PFNs; more than 32 page buffers is EINVAL", () => {
    const w = makeWorld(era);
    const device = new RecordingDevice();
    const { channel } = open(w, device);
    const pbs = Array.from({ length: 33 }, (_, i) => ({ len: 100, offset: 0, pfn: 1000 + i }));
    const tooMany = channel.sendPageBuffer(pbs, new Uint8Array(4));
    expect(tooMany.ok === false && tooMany.error.code).toBe("EINVAL");
    expect(channel.sendPageBuffer(pbs.slice(0, 2), new Uint8Array([1, 2, 3, 4]), "pb").ok).toBe(true);
    // A buffer crossing a page boundary: two fragments of contiguous PFNs become one range.
    const ranges = mpbRangesFromPageBuffers([
      { pfn: 500, offset: 4000, len: 96 },
      { pfn: 501, offset: 0, len: 200 },
    ]);
    expect(ranges).toHaveLength(1);
    expect(channel.sendMpbDesc(ranges, new Uint8Array(16), "mpb").ok).toBe(true);
    w.scheduler.runIdle();
    const [pb, mpb] = device.packets.map((p) => decodeGpaDirectPacket(p.bytes));
    expect(pb?.ok && pb.value.ranges.map((r) => Array.from(r.pfns))).toEqual([[1000], [1001]]);
    expect(mpb?.ok && mpb.value.ranges.map((r) => [r.offset, r.len, Array.from(r.pfns)])).toEqual([
      [4000, 296, [500, 501]],
    ]);
    expect(channel.requestTable!.outstanding).toBe(2);
  });

  it("rescind of an open channel: writes are ENODEV, RELID_RELEASED follows the close", () => {
    const w = makeWorld(era);
    const { channel, host } = open(w);
    let told = 0;
    channel.onRescind(() => told++);
    w.server.rescind(host.relid);
    w.scheduler.runIdle();
    expect(told).toBe(1);
    const r = channel.sendPacket(new Uint8Array(4), { type: VM_PKT.DATA_INBAND, flags: 0 });
    expect(r.ok === false && r.error.code).toBe("ENODEV");
    expect(w.conn.posted(CHANNELMSG.RELID_RELEASED)).toBe(0);
    const c = channel.close();
    expect(c.ok && c.value.freed).toBe(true);
    expect(w.conn.posted(CHANNELMSG.RELID_RELEASED)).toBe(1);
    expect(w.conn.posted(CHANNELMSG.GPADL_TEARDOWN)).toBe(0); // a rescinded channel skips it
    w.scheduler.runIdle();
    expect(w.server.channels.has(host.relid)).toBe(false);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("a host that never answers OPENCHANNEL is ETIMEDOUT and the rings are given back", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    w.server.hooks.intercept = (b) => (b[0] === CHANNELMSG.OPENCHANNEL_RESULT ? { kind: "drop" } : undefined);
    const r = channel.open({ sendRingSize: RING, recvRingSize: RING });
    expect(r.ok === false && r.error.code).toBe("ETIMEDOUT");
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(0);
    expect(w.memory.vmalloc.areas().filter((a) => a.tag === RING_TAGS.mapping)).toEqual([]);
    expect(w.conn.pendingRequests).toBe(0);
  });
});

describe.each(["address-bit", "pte-bit"] as const)("ring visibility failures (%s)", (era) => {
  it("close with a failed re-encryption leaks the ring pages, never frees them", () => {
    const w = makeWorld(era);
    const { channel } = open(w);
    w.hyperv.hypervisor.faults.failCall(1);
    const c = channel.close();
    expect(c.ok).toBe(false);
    expect(w.memory.leakedPages).toBe(8);
    expect(w.memory.buddy.pagesOwnedBy(RING_TAGS.pages)).toBe(8);
    expect(w.memory.checkInvariants()).toEqual([]);
  });

  it("open with a failed ring decryption leaks the ring pages", () => {
    const w = makeWorld(era);
    const { channel } = connectNic(w);
    w.hyperv.hypervisor.faults.failCall(1);
    const r = channel.open({ sendRingSize: RING, recvRingSize: RING });
    expect(r.ok === false && r.error.code).toBe(era === "address-bit" ? "EFAULT" : "EIO");
    expect(w.memory.leakedPages).toBe(8);
    expect(w.conn.posted(CHANNELMSG.OPENCHANNEL)).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("vmbus_alloc_requestor", () => {
  it("kcallocs the id array and bitmap as kernel memory, freed at close", () => {
    const w = makeWorld("address-bit");
    const { channel } = connectNic(w);
    const size = 42_459; // netvsc_rqstor_size of the default 528,384-byte ring
    const r = channel.open({ sendRingSize: RING, recvRingSize: RING, requestTableSize: size });
    if (!r.ok) throw r.error;
    expect(w.memory.kmalloc.statsFor(REQUESTOR_TAG).live).toBe(size * 8 + Math.ceil(size / 64) * 8);
    expect(channel.close().ok).toBe(true);
    expect(w.memory.kmalloc.statsFor(REQUESTOR_TAG).live).toBe(0);
  });

  it("is -ENOMEM when the bitmap cannot be allocated; the id array is given back and nothing was sent", () => {
    const w = makeWorld("address-bit");
    const { channel } = connectNic(w);
    w.memory.faults.failCall("kmalloc", 2);
    const r = channel.open({ sendRingSize: RING, recvRingSize: RING, requestTableSize: 64 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("ENOMEM");
    expect(w.memory.kmalloc.statsFor(REQUESTOR_TAG).live).toBe(0);
    expect(w.conn.posted(CHANNELMSG.GPADL_HEADER)).toBe(0);
    expect(w.memory.checkInvariants()).toEqual([]);
  });
});

describe("child relids over a long-running guest", () => {
  it("a relid the guest released is offered again: more hot adds than MAX_CHANNEL_RELIDS all reach the guest", () => {
    const w = makeWorld("address-bit");
    const first = connectNic(w);
    const cycles = MAX_CHANNEL_RELIDS + 16;
    const relids = new Set<number>();
    for (let i = 0; i < cycles; i++) {
      const host = w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
      w.scheduler.runIdle();
      expect(w.conn.channels.has(host.relid), `hot add ${i} (relid ${host.relid}) not offered`).toBe(true);
      relids.add(host.relid);
      // A channel never opened is released as soon as it is rescinded (hv_process_channel_removal).
      w.server.rescind(host.relid);
      w.scheduler.runIdle();
      expect(w.server.channels.has(host.relid)).toBe(false);
    }
    // The first NIC keeps relid 1; every hot add after it took the lowest free one, released each time.
    expect(first.host.relid).toBe(1);
    expect([...relids]).toEqual([2]);
    expect(w.conn.posted(CHANNELMSG.RELID_RELEASED)).toBe(cycles);
  });

  it("a rescinded channel's relid stays held until the guest closes it and releases it", () => {
    const w = makeWorld("address-bit");
    const { channel, host } = open(w);
    w.server.rescind(host.relid);
    w.scheduler.runIdle();
    const held = w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
    expect(held.relid).not.toBe(host.relid);
    expect(channel.close().ok).toBe(true);
    w.scheduler.runIdle();
    const reused = w.server.registerDevice({ interfaceType: HV_NIC_GUID }, new RecordingDevice());
    expect(reused.relid).toBe(host.relid);
  });
});
