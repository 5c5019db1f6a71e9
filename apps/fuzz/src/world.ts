import type { Era } from "@ivm/hypercall";
import { PAGE_SIZE, PageFlag } from "@ivm/memory";
import { encodeLabFrame, NETVSP_GUEST_MAC, NETVSP_HOST_MAC, verifyLabFrame } from "@ivm/netvsc-protocol";
import { type NetvspOptions, RX_RNDIS_OVERHEAD } from "@ivm/netvsp";
import { type FaultName, type Nic, Vm } from "@ivm/vm";
import { bump, collectNic, collectRing, collectVm, type Tally } from "./tally.js";
import { entryFor, type Target } from "./targets.js";

const MiB = 2 ** 20;
/** A small swiotlb pool (2 MiB): enough for the small NICs here, and cheap to boot and scan. */
const SWIOTLB_SLOTS = 1024;
/**
 * Scheduler rounds per wait (and per runIdle). Every honest wait here ends within 8 rounds, a message
 * the host delays by MAX_DELAY_ROUNDS included (test/rounds.test.ts); a host that keeps the guest
 * busy for ever (a DoS, outside the threat model) is cut off after this many. Twice the longest honest
 * wait: the limit is where nearly all of a campaign's time goes (a livelocked ring is re-read 64 packets
 * a round until the cut, once for the wait that noticed it and again in each wait of the removal that
 * follows), so a larger one only re-reads the same bytes longer.
 */
export const FUZZ_ROUNDS = 16;
/** The longest a `lifecycle` action's host delays one channel message, in scheduler rounds. */
export const MAX_DELAY_ROUNDS = 6;

/** A NIC's sizes: small section counts and rings keep every step cheap. */
export interface NicShape {
  readonly rxSections: number;
  readonly txSections: number;
  readonly ringPages: number;
}

export interface WorldConfig {
  readonly target: Target;
  readonly memoryMiB: number;
  readonly nic: NicShape;
  /** A named fault armed at boot. */
  readonly fault?: FaultName;
}

/** One broken rule: an invariant of the design, or a campaign check (leak accounting, recovery). */
export interface Violation {
  readonly check: string;
  readonly detail: string;
  /** The step that was running (an action index and kind, or a phase name). */
  readonly step: string;
}

/** vCPUs of every fuzzed guest: its NICs open a primary and FUZZ_CPUS - 1 sub-channels. */
export const FUZZ_CPUS = 2;

/** Owners whose pages a NIC holds while it exists; after removal only leaked ones may remain. */
const NIC_OWNERS = ["netvsc-rx", "netvsc-tx", "vmbus-ring"] as const;

/**
 * One booted guest with its host and (usually) one NIC, plus the bookkeeping the campaign checks:
 * the invariants after every step, leaks against failed conversions, and what was held after removal.
 */
export class FuzzWorld {
  readonly config: WorldConfig;
  readonly vm: Vm;
  readonly tally: Tally = new Map();
  readonly violations: Violation[] = [];
  nic: Nic | undefined;
  /** Frames delivered while no action could legitimately change their bytes: they must verify. */
  dataSafe = true;
  /** A run hit the scheduler's round limit: the host keeps the guest busy (a DoS); the NIC is dropped. */
  livelocked = false;
  step = "boot";
  /** kmalloc bytes live with no NIC, and the leaked pages when that was measured (see checkNothingHeld). */
  #kmallocBase: number;
  #leakedBase = 0;

  constructor(config: WorldConfig) {
    this.config = config;
    const entry = entryFor(config.target.strategy);
    const { kernel } = config.target;
    this.vm = Vm.boot({
      memory: config.memoryMiB * MiB,
      // A named kernel runs hardened unless `exact`: the lab's checks of the host values every kernel
      // trusts (ring indices, the rep count) stay on, so what the campaign reports as findings are the
      // behaviours that differ between kernels, and its invariant checks keep their meaning.
      ...(kernel !== undefined
        ? { kernel, hardened: config.target.exact !== true }
        : { era: config.target.era as Era }),
      ...(config.fault !== undefined ? { fault: config.fault } : {}),
      swiotlbSlots: SWIOTLB_SLOTS,
      maxRoundsPerWait: FUZZ_ROUNDS,
      strategy: entry,
      // Two vCPUs: every NIC is multi-queue (the primary and one vRSS sub-channel, up to ethtool -L).
      cpus: FUZZ_CPUS,
      // The session records the first add's messages and clears the log itself after every step.
      messageLog: Number.POSITIVE_INFINITY,
    });
    this.#kmallocBase = this.vm.memory.kmalloc.totalLive;
  }

  /** Lets guest and host run; notes a host that never lets the guest go idle. */
  runIdle(): void {
    if (this.vm.runIdle() >= FUZZ_ROUNDS) this.livelocked = true;
  }

  get isolated(): boolean {
    return this.vm.isolated;
  }

  /** Records a violation of `check` at the current step. */
  fail(check: string, detail: string): void {
    this.violations.push({ check, detail, step: this.step });
  }

  /**
   * Findings are what the booted kernel would do, not violations: counted by id (`finding:<id>`, and
   * `finding-sessions:<id>` once per session that found one), with whether the named fault fired.
   */
  collectFindings(): void {
    for (const [id, n] of this.vm.findingLog.countsById()) {
      bump(this.tally, `finding:${id}`, n);
      bump(this.tally, `finding-sessions:${id}`);
    }
    const fault = this.vm.fault;
    if (fault !== undefined) bump(this.tally, `fault:${fault.name}:${fault.fired ? "fired" : "missed"}`);
  }

  /** Runs the VM's invariant checker and records what it reports. */
  checkInvariants(): void {
    for (const v of this.vm.checkInvariants()) {
      this.fail(v.invariant, v.pfn === undefined ? v.detail : `${v.detail} (pfn ${v.pfn})`);
    }
  }

  /** Hot-adds a NIC with this world's shape; a failure is counted by its reason and must leave nothing. */
  addNic(netvsp: Omit<NetvspOptions, "isolated"> = {}, shape: NicShape = this.config.nic): boolean {
    if (this.nic !== undefined) this.removeNic();
    const r = this.vm.addNic({
      rxSections: shape.rxSections,
      txSections: shape.txSections,
      ringBytes: shape.ringPages * PAGE_SIZE,
      // Two control sections instead of 16, so a handful of receive sections is a working buffer.
      netvsp: { controlSections: 2, ...netvsp },
    });
    if (r.ok) {
      this.nic = r.nic;
      bump(this.tally, "outcome:add-ok");
      return true;
    }
    const e = r.error as Error & { code?: string; reason?: string };
    bump(this.tally, `outcome:add-failed:${e.code ?? "?"}:${e.reason ?? e.name}`);
    this.checkNothingHeld("failed add");
    return false;
  }

  /** Hot-removes the NIC (if any), collecting its counters first. */
  removeNic(): void {
    const nic = this.nic;
    if (nic === undefined) return;
    collectRing(this.tally, this.vm, nic.relid);
    this.nic = undefined;
    const { leakedBuffers } = this.vm.removeNic(nic);
    collectNic(this.tally, nic);
    bump(this.tally, "outcome:leaked-buffers", leakedBuffers);
    this.checkNothingHeld("remove");
  }

  /**
   * After a NIC is gone: nothing it allocated is held except leaked pages (I4), no DMA mapping is live,
   * no page of it is still host-visible unless leaked, and a leak happened only if a visibility
   * conversion failed (the leaked pages are those whose visibility is unknown).
   */
  checkNothingHeld(phase: string): void {
    const { memory, dma } = this.vm;
    if (this.nic !== undefined) return;
    if (dma.counters.liveMappings !== 0)
      this.fail("held", `${phase}: ${dma.counters.liveMappings} DMA mappings live`);
    let held = 0;
    for (const tag of NIC_OWNERS) held += memory.buddy.pagesOwnedBy(tag);
    const leakedNic = this.#leakedNicPages();
    if (held !== leakedNic) this.fail("held", `${phase}: ${held - leakedNic} NIC pages held and not leaked`);
    // A leak keeps the private metadata that goes with the leaked pages, as the kernel does (a vmalloc
    // area is never vfree'd, a ring whose teardown failed is never cleaned up); without a new leak,
    // every byte must be back.
    const kmalloc = memory.kmalloc.totalLive - this.#kmallocBase;
    if (memory.leakedPages !== this.#leakedBase) {
      this.#leakedBase = memory.leakedPages;
      this.#kmallocBase = memory.kmalloc.totalLive;
    } else if (kmalloc !== 0) this.fail("held", `${phase}: ${kmalloc} kmalloc bytes still live`);
    if (this.isolated) {
      const failures =
        this.vm.hyperv.setMemory.counters.failures + this.vm.hyperv.hypercalls.untrustedAnswers;
      if (memory.leakedPages > 0 && failures === 0)
        this.fail("leak-exact", `${phase}: ${memory.leakedPages} pages leaked without a failed conversion`);
    }
  }

  /** Leaked pages owned by a NIC's tags (the shared pool's leaks are slots inside its own pages). */
  #leakedNicPages(): number {
    const { phys, buddy } = this.vm.memory;
    if (buddy.leakedPages === 0) return 0;
    let n = 0;
    for (let pfn = 0; pfn < phys.pages; pfn++) {
      if ((phys.flags[pfn]! & PageFlag.Leaked) === 0) continue;
      const owner = buddy.ownerOf(pfn);
      if ((NIC_OWNERS as readonly string[]).includes(owner)) n++;
    }
    return n;
  }

  /**
   * Moves self-checking frames both ways. Every frame the guest delivers is checked; while no action
   * could legitimately change a frame's bytes (`dataSafe`), an unverified frame is a violation (a
   * double fetch would show here). Returns delivered and verified counts.
   */
  traffic(tx: number, rx: number, seed: number): { delivered: number; verified: number } {
    const nic = this.nic;
    if (nic === undefined) return { delivered: 0, verified: 0 };
    let delivered = 0;
    let verified = 0;
    nic.onFrame = (frame) => {
      delivered++;
      if (verifyLabFrame(frame).ok) verified++;
      else if (this.dataSafe) this.fail("I3", `a delivered frame of ${frame.length} bytes does not verify`);
      else bump(this.tally, "outcome:rx-frame-unverified-under-attack");
    };
    const maxRx = (nic.device.sections?.recvSize ?? 1728) - RX_RNDIS_OVERHEAD;
    if (rx > 0 && maxRx >= 64) {
      const sizes: number[] = [];
      for (let i = 0; i < rx; i++) sizes.push(64 + ((seed * 7919 + i * 104729) % (maxRx - 63)));
      nic.host.queueRx(sizes);
    }
    for (let i = 0; i < tx; i++) {
      const len = 64 + ((seed * 31 + i * 977) % (i % 4 === 3 ? 9000 : 1400));
      const frame = encodeLabFrame({
        seq: i,
        seed: seed >>> 0,
        length: len,
        dstMac: NETVSP_HOST_MAC,
        srcMac: NETVSP_GUEST_MAC,
      });
      // xmit_more holds only within one transmit queue: the next frame must hash to the same one.
      const next = encodeLabFrame({
        seq: i + 1,
        seed: seed >>> 0,
        length: 64,
        dstMac: NETVSP_HOST_MAC,
        srcMac: NETVSP_GUEST_MAC,
      });
      const sameQueue = nic.device.queueFor(next) === nic.device.queueFor(frame);
      let tries = 0;
      for (;;) {
        const v = nic.device.send(frame, { xmitMore: i !== tx - 1 && (i & 3) !== 3 && sameQueue });
        if (v === "sent") break;
        if (v === "dropped" || ++tries > 4) {
          bump(this.tally, v === "dropped" ? "outcome:tx-dropped" : "outcome:tx-busy-gave-up");
          break;
        }
        this.runIdle();
        if (this.livelocked) break;
      }
      if (this.livelocked) break;
    }
    this.runIdle();
    bump(this.tally, "traffic:rx-delivered", delivered);
    return { delivered, verified };
  }

  /**
   * With the host honest again: a fresh NIC must come up and carry verified traffic both ways, then go
   * cleanly. This is the "device stays usable" half of every session.
   */
  recover(): void {
    this.step = "recover";
    this.dataSafe = true;
    this.removeNic();
    if (!this.addNic()) {
      this.fail("recovery", "an honest host could not add a NIC after the session");
      return;
    }
    const nic = this.nic!;
    const txBefore = nic.host.counters.txFramesVerified;
    const { delivered, verified } = this.traffic(6, 6, 12345);
    if (delivered !== 6 || verified !== 6)
      this.fail("recovery", `received ${verified}/${delivered} of 6 frames`);
    const txOk = nic.host.counters.txFramesVerified - txBefore;
    if (txOk !== 6) this.fail("recovery", `the host verified ${txOk} of 6 sent frames`);
    this.checkInvariants();
    this.removeNic();
    this.checkInvariants();
    collectVm(this.tally, this.vm);
  }
}
