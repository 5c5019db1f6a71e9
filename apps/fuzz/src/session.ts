import { PAGE_SIZE } from "@ivm/memory";
import type { NetvspAdversary, NetvspOptions, NetvspOutgoing } from "@ivm/netvsp";
import {
  type ChannelMessage,
  encodeChannelMessage,
  HV_NIC_GUID,
  RING_HEADER,
  type RingMem,
} from "@ivm/vmbus";
import {
  type Action,
  type DuringAdd,
  type ForgedMessage,
  type Knobs,
  mutate,
  type RewriteArea,
  type SessionInput,
} from "./actions.js";
import { applySubchannel } from "./subchannels.js";
import { bump, type Tally } from "./tally.js";
import { FuzzWorld, type Violation } from "./world.js";

export interface SessionResult {
  readonly violations: readonly Violation[];
  readonly tally: Tally;
  /** Actions applied (the inputs this session tried). */
  readonly actions: number;
}

const RING_FIELDS = {
  write: RING_HEADER.WRITE_INDEX,
  read: RING_HEADER.READ_INDEX,
  pending: RING_HEADER.PENDING_SEND_SZ,
  features: RING_HEADER.FEATURE_BITS,
  mask: RING_HEADER.INTERRUPT_MASK,
} as const;

/** Honest traffic recorded at the start of a session: the templates the mutating actions start from. */
interface Recording {
  readonly channel: Uint8Array[];
  readonly packets: Uint8Array[];
}

/** A ring packet is 8-byte aligned and at least a descriptor long. */
function asPacket(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.max(16, Math.ceil(bytes.length / 8) * 8));
  out.set(bytes);
  return out;
}

/**
 * Runs one campaign input: boot, add a NIC while recording the honest host's messages, apply every
 * action with the invariants checked after each, then let an honest host prove the guest still works.
 * Anything thrown is a violation too: bad host input must never crash the guest.
 */
export function runSession(input: SessionInput): SessionResult {
  const world = new FuzzWorld({
    target: {
      strategy: input.strategy,
      era: input.era,
      ...(input.kernel !== undefined ? { kernel: input.kernel } : {}),
      ...(input.exact ? { exact: true } : {}),
    },
    ...(input.fault !== undefined ? { fault: input.fault } : {}),
    memoryMiB: input.memoryMiB,
    nic: { rxSections: input.rxSections, txSections: input.txSections, ringPages: input.ringPages },
  });
  const rec: Recording = { channel: [], packets: [] };
  let applied = 0;
  try {
    record(world, rec);
    world.checkInvariants();
    for (const [i, action] of input.actions.entries()) {
      world.step = `${i}:${action.k}`;
      if (process.env.FUZZ_TRACE)
        (globalThis as { __trace?: (s: string) => void }).__trace?.(
          `${world.step} ${JSON.stringify(action, (_k, v) => (v instanceof Uint8Array ? v.length : v))}`,
        );
      apply(world, rec, action);
      applied++;
      settle(world);
      world.checkInvariants();
    }
    disarm(world);
    world.recover();
  } catch (e) {
    world.fail("crash", e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  }
  world.collectFindings();
  bump(world.tally, "campaign:actions", applied);
  return { violations: world.violations, tally: world.tally, actions: applied };
}

/** The first add and a little traffic with a recording host: channel messages and ring packets. */
function record(world: FuzzWorld, rec: Recording): void {
  const seen = (m: NetvspOutgoing): undefined => {
    if (rec.packets.length < 64) rec.packets.push(m.bytes.slice());
    return undefined;
  };
  if (!world.addNic({ adversary: { interceptor: seen } })) {
    world.fail("recovery", "an honest host could not add the session's first NIC");
    return;
  }
  world.traffic(4, 4, 1);
  world.nic!.host.adversary = undefined;
  for (const e of world.vm.messages) if (e.direction === "host-to-guest") rec.channel.push(e.bytes);
  world.vm.messages.length = 0; // nothing else reads them; a long session must not grow without bound
}

/** Let both sides run; a NIC whose channel was rescinded is removed, as the driver core would. */
function settle(world: FuzzWorld): void {
  world.runIdle();
  world.vm.messages.length = 0;
  const nic = world.nic;
  if (nic !== undefined) {
    const ch = world.vm.conn.channels.get(nic.relid);
    if (world.livelocked) {
      // The host keeps the guest busy for ever (a soft lockup in the kernel): the device is given up on.
      bump(world.tally, "outcome:host-livelock");
      world.removeNic();
    } else if (ch === undefined || ch.rescinded) {
      bump(world.tally, "outcome:nic-rescinded");
      world.removeNic();
    }
  }
  world.livelocked = false;
  // The host offers the device again (a lost NIC would leave every later action without a target).
  if (world.nic === undefined) world.addNic();
}

/** Every standing and one-shot misbehaviour off. */
function disarm(world: FuzzWorld): void {
  const { vm } = world;
  vm.server.hooks.intercept = undefined;
  vm.server.postStatus = undefined;
  vm.hyperv.hypervisor.faults.clear();
  vm.memory.faults.clear();
  if (world.nic !== undefined) world.nic.host.adversary = undefined;
}

function apply(world: FuzzWorld, rec: Recording, a: Action): void {
  const { vm } = world;
  const nic = world.nic;
  switch (a.k) {
    case "traffic":
      world.traffic(a.tx, a.rx, a.seed);
      return;
    case "chan-mutate": {
      const t = rec.channel[a.template % Math.max(1, rec.channel.length)];
      if (t !== undefined) vm.server.sendRaw(mutate(t, a.mutations));
      world.dataSafe = false;
      return;
    }
    case "chan-raw":
      vm.server.sendRaw(a.bytes);
      return;
    case "chan-forge": {
      const msg = forgedMessage(world, a.msg);
      if (msg !== undefined) vm.server.sendRaw(encodeChannelMessage(msg));
      return;
    }
    case "pkt-mutate":
    case "pkt-raw": {
      const ep = nic === undefined ? undefined : vm.server.channels.get(nic.relid);
      if (ep?.endpoint === undefined) return;
      const t = a.k === "pkt-raw" ? a.bytes : rec.packets[a.template % Math.max(1, rec.packets.length)];
      if (t === undefined) return;
      const bytes = asPacket(a.k === "pkt-raw" ? t : mutate(t, a.mutations));
      const r = ep.send(bytes);
      bump(world.tally, r.ok ? "inject:packet-written" : `inject:packet-${r.error.reason}`);
      world.dataSafe = false;
      return;
    }
    case "ring": {
      const ep = nic === undefined ? undefined : vm.server.channels.get(nic.relid)?.endpoint;
      if (ep === undefined) return;
      const mem: RingMem = a.ring === "in" ? ep.toGuest : ep.fromGuest;
      tryHost(world, () => mem.writeHeaderU32(RING_FIELDS[a.field], a.value));
      // The host may interrupt the guest at any time: make it look at the ring now.
      vm.server.signalGuest(nic!.relid);
      world.dataSafe = false;
      return;
    }
    case "rewrite":
      rewrite(world, a.area, a.offset, a.bytes);
      world.dataSafe = false;
      return;
    case "forge-completion":
      nic?.host.forgeTxCompletion(BigInt(a.tid), a.status);
      return;
    case "send-table":
      // as u32 words, whatever a hand-edited --replay input holds (the generator makes only those)
      nic?.host.sendIndirectionTable(
        a.entries.map((e) => e >>> 0),
        { count: a.count >>> 0, offset: a.offset >>> 0, at: Math.min(a.at >>> 0, 4096) },
      );
      return;
    case "knobs":
      if (nic === undefined) return;
      nic.host.adversary = adversaryFor(a.knobs);
      if (a.knobs.xferRange !== undefined || a.knobs.mutateKind !== undefined) world.dataSafe = false;
      return;
    case "rescind":
      if (nic !== undefined) vm.server.rescind(nic.relid);
      return;
    case "subchannel":
      applySubchannel(world, a.op);
      return;
    case "honest":
      disarm(world);
      return;
    case "lifecycle":
      lifecycle(world, a.rx, a.tx, a.ringPages, a.during);
      return;
    case "remove-fault":
      removeWithFault(world, a.nth);
      return;
  }
}

/** A host access that the host view may refuse (the guest made the page private): counted, not fatal. */
function tryHost(world: FuzzWorld, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof Error) || e.name !== "HypercallError") throw e;
    bump(world.tally, "inject:host-access-refused");
  }
}

/** The host writes `bytes` into one of the areas it shares with the guest, between two guest reads. */
function rewrite(world: FuzzWorld, area: RewriteArea, offset: number, bytes: Uint8Array): void {
  const { vm } = world;
  const nic = world.nic;
  if (area === "swiotlb") {
    const pool = vm.dmaLayer.pool;
    if (pool === undefined || pool === null) return;
    const size = pool.boot.poolPages * PAGE_SIZE;
    const at = offset % Math.max(1, size - bytes.length);
    tryHost(world, () => vm.hyperv.hostView.write(pool.boot.startPfn * PAGE_SIZE + at, bytes));
    return;
  }
  if (nic === undefined) return;
  if (area === "ring-in" || area === "ring-out") {
    const ep = vm.server.channels.get(nic.relid)?.endpoint;
    if (ep === undefined) return;
    const mem = area === "ring-in" ? ep.toGuest : ep.fromGuest;
    tryHost(world, () =>
      mem.write(offset % mem.dataSize, bytes.subarray(0, Math.min(bytes.length, mem.dataSize))),
    );
    return;
  }
  const buf = area === "recv" ? nic.device.rxBuffer : nic.device.txBuffer;
  const gpadlVa = area === "recv" ? nic.device.rxGpadlVa : nic.device.txGpadlVa;
  if (buf === undefined || gpadlVa === undefined) return;
  // The host knows the buffer's pages from its GPADL; the guest's walk of the same address finds them.
  const at = offset % Math.max(1, buf.bytes - bytes.length);
  const pfn = vm.memory.virtToPfn(gpadlVa + at - (at % PAGE_SIZE));
  const n = Math.min(bytes.length, PAGE_SIZE - (at % PAGE_SIZE));
  tryHost(world, () => vm.hyperv.hostView.write(pfn * PAGE_SIZE + (at % PAGE_SIZE), bytes.subarray(0, n)));
}

function forgedMessage(world: FuzzWorld, f: ForgedMessage): ChannelMessage | undefined {
  switch (f.m) {
    case "gpadl-created":
      return { kind: "gpadl-created", childRelid: f.relid, gpadl: f.gpadl, creationStatus: f.status };
    case "gpadl-torndown":
      return { kind: "gpadl-torndown", gpadl: f.gpadl };
    case "open-result":
      return { kind: "open-channel-result", childRelid: f.relid, openId: f.openId, status: f.status };
    case "version-response":
      return { kind: "version-response", versionSupported: f.supported, connectionState: 0, msgConnId: 1 };
    case "offer": {
      const any = [...world.vm.server.channels.values()][0];
      if (any === undefined) return undefined;
      const interfaceType = f.nic ? HV_NIC_GUID.slice() : new Uint8Array(16).fill(0x42);
      return { ...any.offer, interfaceType, childRelid: f.relid, connectionId: f.relid };
    }
    case "rescind":
      return { kind: "rescind-channel-offer", childRelid: f.relid };
    case "all-offers":
      return { kind: "all-offers-delivered" };
    case "unload-response":
      return { kind: "unload-response" };
  }
}

/** Standing netvsp misbehaviour for a `knobs` action. */
function adversaryFor(k: Knobs): NetvspAdversary {
  let seen = 0;
  const m = k.mutateKind;
  return {
    ...(k.xferRange !== undefined ? { xferRange: k.xferRange } : {}),
    ...(k.duplicateTx !== undefined ? { duplicateTxCompletions: k.duplicateTx } : {}),
    ...(k.rxRewrite !== undefined ? { rxRewrite: k.rxRewrite } : {}),
    ...(m !== undefined
      ? {
          interceptor: (out: NetvspOutgoing) =>
            out.kind === m.kind && ++seen % m.every === 0 ? mutate(out.bytes, m.mutations) : undefined,
        }
      : {}),
  };
}

/**
 * Remove the NIC and add a new one with `during` armed: the host misbehaves at one step of the
 * handshake, or one layer fails once. The add either works (then it must carry traffic) or fails
 * leaving nothing but leaks behind (checked by the world on every failed add and remove).
 */
function lifecycle(world: FuzzWorld, rx: number, tx: number, ringPages: number, during: DuringAdd): void {
  const { vm } = world;
  world.removeNic();
  disarm(world);
  const netvsp: { -readonly [K in keyof Omit<NetvspOptions, "isolated">]: NetvspOptions[K] } = {};
  let hostMessages = 0;
  let guestPosts = 0;
  let refusals = 0;
  switch (during.a) {
    case "none":
      break;
    case "intercept":
      vm.server.hooks.intercept = (bytes) => {
        if (++hostMessages !== during.nth) return undefined;
        if (during.action === "drop") return { kind: "drop" };
        if (during.action === "delay") return { kind: "delay", rounds: during.rounds };
        if (during.action === "mutate") return { kind: "replace", bytes: mutate(bytes, during.mutations) };
        vm.server.sendRaw(bytes);
        return undefined;
      };
      break;
    case "rescind":
      vm.server.hooks.intercept = () => {
        if (++hostMessages === during.nth) {
          const stop = vm.scheduler.addPoller("fuzz: rescind", () => {
            stop();
            const relid = Math.max(...vm.server.channels.keys());
            if (vm.server.channels.get(relid)?.state !== "rescinded") vm.server.rescind(relid);
            return true;
          });
        }
        return undefined;
      };
      break;
    case "post-status":
      vm.server.postStatus = (_bytes, attempt) => {
        if (attempt === 1) guestPosts++;
        if (guestPosts === during.nth && refusals < during.times) {
          refusals++;
          return during.status;
        }
        return 0;
      };
      break;
    case "hypercall": {
      const f = vm.hyperv.hypervisor.faults;
      if (during.kind === "fail") f.failCall(during.k);
      else if (during.kind === "partial") f.partialReps(during.k, during.reps);
      else f.impossibleCount(during.k, during.kind);
      break;
    }
    case "alloc":
      vm.memory.faults.failCall(during.site, during.k);
      break;
    case "recv-buf":
      netvsp.adversary = { recvBufComplete: during.tamper };
      break;
    case "sections":
      netvsp.recvSectionSize = during.recvSectionSize;
      netvsp.sendSectionSize = during.sendSectionSize;
      break;
    case "netvsp": {
      let seen = 0;
      netvsp.adversary = {
        interceptor: (out) => {
          if (out.kind !== during.kind || ++seen !== during.nth) return undefined;
          return during.drop ? null : mutate(out.bytes, during.mutations);
        },
      };
      break;
    }
  }
  bump(world.tally, `lifecycle:${during.a}`);
  const added = world.addNic(netvsp, { rxSections: rx, txSections: tx, ringPages });
  disarm(world);
  world.dataSafe = during.a !== "intercept" && during.a !== "netvsp";
  if (added) world.traffic(2, 2, rx * 31 + tx);
}

/**
 * Hot-remove with the n-th host-visibility hypercall of the removal refused: a buffer's or the ring's
 * re-encryption fails (netvsc tears down the receive GPADL, then the send GPADL, then closes the channel).
 * The kernel then either leaks what may still be shared or (before the 2024 fixes) frees it: the world's
 * checks hold either way, and the findings say which. An honest NIC is added again.
 */
function removeWithFault(world: FuzzWorld, nth: number): void {
  if (world.nic === undefined) return;
  const faults = world.vm.hyperv.hypervisor.faults;
  faults.failCall(nth);
  bump(world.tally, "remove-fault:armed");
  world.removeNic();
  disarm(world);
  if (world.addNic()) world.traffic(2, 2, nth);
}
