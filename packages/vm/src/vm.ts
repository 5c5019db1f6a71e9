import { bootPlatform, type Era, type HypervLayer } from "@ivm/hypercall";
import {
  eraProfile,
  type Finding,
  FindingLog,
  getProfile,
  type KernelProfile,
  withHardened,
} from "@ivm/kernel";
import {
  ageMemory,
  type GuestMemory,
  PageFlag,
  type UptimeLevel,
  type UptimeParams,
  type UptimeReport,
} from "@ivm/memory";
import { NetvscDevice, type NetvscDeviceOptions } from "@ivm/netvsc";
import { Netvsp, type NetvspOptions, netvspVmbusDevice } from "@ivm/netvsp";
import type { SharedBufferStrategy, StrategyDescriptor, StrategyServices } from "@ivm/shared-buffer";
import { bootDma, type DmaDevice, type DmaLayer, type DmaOps } from "@ivm/swiotlb";
import {
  HV_NIC_GUID,
  type MessageEvent,
  type Scheduler,
  type SynicLink,
  type VmbusConnection,
} from "@ivm/vmbus";
import { bootVmbus, type HostChannel, type HostVmbusServer } from "@ivm/vmbus/host";
import { ArmedFault, type FaultName, type FaultReport } from "./faults.js";
import {
  checkVmInvariants,
  type InvariantBaseline,
  type InvariantViolation,
  type RetiredNicGuards,
} from "./invariants.js";
import { measuredStrategy, type StrategyCallCost } from "./measured-strategy.js";

/**
 * The profile `Vm.boot` runs: `kernel` by name or as given, else the era's representative kernel;
 * `hardened` as asked (default: the given profile's own flag; a name is kernel-exact; the era shorthand hardened). Throws UnknownKernelError for a name the
 * lab does not know, and a RangeError when `era` contradicts the kernel.
 */
function resolveKernel(options: VmOptions): KernelProfile {
  const given = options.kernel;
  const base =
    given === undefined
      ? eraProfile(options.era ?? "address-bit")
      : typeof given === "string"
        ? getProfile(given)
        : given;
  if (given !== undefined && options.era !== undefined && options.era !== base.era)
    throw new RangeError(`kernel ${base.name} is a ${base.era} kernel, not ${options.era}`);
  // A profile object keeps its own `hardened`; a name runs the kernel's own logic; the era shorthand is hardened.
  const hardened =
    options.hardened ?? (given === undefined ? true : typeof given === "string" ? false : given.hardened);
  return hardened ? withHardened(base) : base.hardened ? { ...base, hardened: false } : base;
}

/** What the VM hands a strategy factory: the layers a strategy may use, built at boot. */
export interface VmServices extends StrategyServices {
  /** The booted kernel (a strategy may read the behaviours it depends on; `hyperv.profile` is the same). */
  readonly kernel: KernelProfile;
  /** The guest's one finding log (`hyperv.findings` is the same). */
  readonly findings: FindingLog;
  readonly dmaLayer: DmaLayer;
  /** The synthetic NIC's DMA device (netvsc's streaming mappings and approaches (2) and (3) use it). */
  readonly dma: DmaDevice;
}

export interface VmOptions {
  /** Guest RAM in bytes. */
  readonly memory: number;
  /**
   * The kernel to boot: a profile name ("5.17", "6.12", … — `PROFILE_NAMES` of @ivm/kernel) or a
   * KernelProfile. Every layer runs its behaviours, and the era is the profile's. Without it, `era`
   * picks the era's representative kernel (@ivm/kernel's ERA_PROFILES: 5.17, 6.9).
   */
  readonly kernel?: string | KernelProfile;
  /**
   * Keep the lab's stricter checks of host values where the kernel trusts them (ring indices, the rep
   * count), reported as such. Default: false with `kernel` (the kernel's own logic, with findings),
   * true without it (the `era` shorthand boots the lab as it was before kernel profiles).
   */
  readonly hardened?: boolean;
  /**
   * Shorthand for the era's representative kernel: address-bit (Linux 5.16–6.3) or pte-bit (6.4+);
   * default address-bit. With `kernel` it must agree with the profile's era.
   */
  readonly era?: Era;
  /** A named fault (see VM_FAULTS) armed at boot; it fires at most once. */
  readonly fault?: FaultName;
  /** An SNP guest with vTOM (default) or a VM without isolation. */
  readonly isolation?: boolean;
  /** swiotlb slots; default the 5.17 isolated-guest sizing (6 % of memory, [64 MiB, 1 GiB]). */
  readonly swiotlbSlots?: number;
  /** How long Linux has been running before devices are added (see @ivm/memory's ageMemory). */
  readonly uptime?: UptimeLevel | UptimeParams;
  readonly seed?: number;
  /**
   * Rounds one wait (or one runIdle) may take while guest and host keep reporting progress; default the
   * scheduler's 100,000. A hostile host can keep the guest busy for ever (a DoS the threat model leaves
   * out); campaigns lower this so such an input costs milliseconds, not minutes.
   */
  readonly maxRoundsPerWait?: number;
  /**
   * vCPUs (num_online_cpus): they cap a NIC's channels (max_chn), set the kernel's default count, and
   * are the CPUs VMBus spreads the channels over (init_vp_index: OPENCHANNEL's target_vp).
   * Default 2. Given explicitly, NICs are multi-queue: the host offers one receive queue per vCPU, as
   * Hyper-V does; without it the host offers one queue, so NICs stay single-channel.
   */
  readonly cpus?: number;
  /**
   * Channel messages `Vm.messages` keeps: the newest this many (default 4,096, about twenty NIC adds; 0
   * keeps none, Infinity all). A long-running guest adds and removes NICs for hours: an unbounded log
   * would be its one allocation that never stops growing.
   */
  readonly messageLog?: number;
  /**
   * The allocation strategy for netvsc's buffers, built at boot (before aging), as the composition root
   * chooses: a strategy package's descriptor (its DMA ops are installed too), or a factory.
   */
  readonly strategy: VmStrategy | ((services: VmServices) => SharedBufferStrategy);
  /** DMA ops layered over the platform's for the NIC's device; default the descriptor's, if any. */
  readonly dmaOps?: DmaOpsInstaller;
}

/** How a strategy layers its DMA ops over the platform's (approaches (2) and (3) install theirs). */
export type DmaOpsInstaller = (base: DmaOps, hyperv: HypervLayer) => DmaOps;

/** A strategy package's descriptor, as the VM runs it. */
export type VmStrategy = StrategyDescriptor<VmServices, never, DmaOpsInstaller>;

export interface NicOptions {
  readonly rxSections?: number;
  readonly txSections?: number;
  /** Bytes of each ring, header page included (default netvsc's VMBUS_RING_SIZE(128 × 4 KiB)). */
  readonly ringBytes?: number;
  readonly netvsp?: Omit<NetvspOptions, "isolated">;
  readonly onReceive?: (frame: Uint8Array) => void;
  /**
   * Channels to ask for (dev_info->num_chn, as `ethtool -L combined` sets it): the primary plus
   * queues - 1 vRSS sub-channels, capped by max_chn = min(64, cpus, host queues). Default: the booted
   * kernel's default for the VM's cpus. Giving it makes the host offer one queue per vCPU.
   */
  readonly queues?: number;
}

/** Channel messages a Vm keeps unless told otherwise (VmOptions.messageLog). */
export const DEFAULT_MESSAGE_LOG = 4096;

/** A synthetic NIC: the guest's driver and the host's device. */
export interface Nic {
  readonly device: NetvscDevice;
  readonly host: Netvsp;
  readonly hostChannel: HostChannel;
  readonly relid: number;
  /** Where received frames (private copies) go; settable at any time. */
  onFrame: ((frame: Uint8Array) => void) | undefined;
}

/**
 * One bootable guest and its host: memory, the hypervisor, swiotlb, the VMBus connection and server, and
 * an allocation strategy for netvsc, assembled in the kernel's boot order. This is what the apps and the
 * end-to-end tests use.
 */
export class Vm {
  readonly options: VmOptions;
  /** The booted kernel profile, handed to every layer at construction. */
  readonly kernel: KernelProfile;
  /** The profile's era. */
  readonly era: Era;
  /** The one log every layer reports findings into. */
  readonly findingLog: FindingLog;
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  readonly dmaLayer: DmaLayer;
  readonly dma: DmaDevice;
  readonly scheduler: Scheduler;
  readonly synic: SynicLink;
  readonly conn: VmbusConnection;
  readonly server: HostVmbusServer;
  /** The injected strategy, wrapped so that its own costs are measured per buffer. */
  readonly strategy: SharedBufferStrategy;
  readonly strategyCosts: readonly StrategyCallCost[];
  readonly uptime: UptimeReport | null;
  /** The newest channel messages (options.messageLog of them), oldest first (for timelines). */
  get messages(): MessageEvent[] {
    this.#trimMessages();
    return this.#messages;
  }
  /** Channel messages dropped from the front of `messages` to keep it at options.messageLog. */
  get messagesDropped(): number {
    this.#trimMessages();
    return this.#messagesDropped;
  }
  // The log grows to twice its bound between trims (one splice per `keep` messages rather than a
  // shift per message); whoever looks at it sees the newest `keep` only.
  readonly #messages: MessageEvent[] = [];
  #messagesDropped = 0;
  readonly #messageLog: number;
  #trimMessages(): void {
    const over = this.#messages.length - this.#messageLog;
    if (over <= 0) return;
    this.#messages.splice(0, over);
    this.#messagesDropped += over;
  }
  #nics = new Set<Nic>();
  readonly #fault: ArmedFault | undefined;
  readonly #baseline: InvariantBaseline;
  readonly #retired: RetiredNicGuards = { parsedFromShared: 0, staleCompletions: 0, sectionDoubleFrees: 0 };

  private constructor(options: VmOptions) {
    const keep = options.messageLog ?? DEFAULT_MESSAGE_LOG;
    if (!(keep === Number.POSITIVE_INFINITY || (Number.isSafeInteger(keep) && keep >= 0))) {
      throw new RangeError(
        `messageLog must be a count of messages (an integer >= 0, or Infinity), got ${keep}`,
      );
    }
    this.options = options;
    this.kernel = resolveKernel(options);
    this.era = this.kernel.era;
    this.findingLog = new FindingLog();
    const kernel = { profile: this.kernel, findings: this.findingLog };
    // The same steps every layer's `testing` world boots with: platform, swiotlb, then the bus.
    const platform = bootPlatform({
      bytes: options.memory,
      isolation: (options.isolation ?? true) ? "snp" : "none",
      era: this.era,
      cpus: options.cpus ?? 2,
      kernel,
    });
    this.memory = platform.memory;
    this.hyperv = platform.hyperv;
    // swiotlb is set up early in boot, from low memory (memblock), and made host-visible then.
    this.dmaLayer = bootDma(this.memory, this.hyperv, {
      ...kernel,
      ...(options.swiotlbSlots ? { nslabs: options.swiotlbSlots } : {}),
    });
    const descriptor = typeof options.strategy === "function" ? undefined : options.strategy;
    const install = options.dmaOps ?? descriptor?.dmaOps;
    const ops = install ? install(this.dmaLayer.ops, this.hyperv) : this.dmaLayer.ops;
    this.dma = this.dmaLayer.createDevice({ name: "netvsc", minAlignMask: 0xfff, ops });
    const bus = bootVmbus({
      memory: this.memory,
      hyperv: this.hyperv,
      kernel: this.kernel,
      findings: this.findingLog,
      // num_online_cpus(): init_vp_index spreads the NIC's channels over them (OPENCHANNEL's target_vp).
      cpus: options.cpus ?? 2,
      ...(options.maxRoundsPerWait !== undefined ? { maxRoundsPerWait: options.maxRoundsPerWait } : {}),
    });
    this.scheduler = bus.scheduler;
    this.synic = bus.synic;
    this.conn = bus.conn;
    this.server = bus.server;
    this.#messageLog = keep;
    this.conn.onMessage((e) => {
      if (keep === 0) this.#messagesDropped++;
      else if (this.#messages.push(e) >= 2 * keep) this.#trimMessages();
    });
    const connected = this.conn.connect();
    if (!connected.ok) throw connected.error;
    this.#fault = options.fault ? new ArmedFault(options.fault, this.hyperv, this.memory) : undefined;
    const services: VmServices = {
      memory: this.memory,
      hyperv: this.hyperv,
      dmaLayer: this.dmaLayer,
      dma: this.dma,
      kernel: this.kernel,
      findings: this.findingLog,
    };
    const measured = measuredStrategy(
      descriptor
        ? descriptor.create(services)
        : (options.strategy as (s: VmServices) => SharedBufferStrategy)(services),
      this.memory,
      (purpose, pages) => this.#fault?.bufferAllocated(purpose, pages),
    );
    this.strategy = measured;
    this.strategyCosts = measured.costs;
    this.uptime = options.uptime ? ageMemory(this.memory.buddy, options.seed ?? 1, options.uptime) : null;
    this.#baseline = { mmuFaults: this.memory.mmu.totalFaults, cleanAtVisibilityChange: -1 };
  }

  /** Boots the guest; throws only for impossible configurations (e.g. a strategy refusing the era). */
  static boot(options: VmOptions): Vm {
    return new Vm(options);
  }

  /** Every finding the layers reported, in order (what the booted kernel would have done; not model failures). */
  get findings(): readonly Finding[] {
    return this.findingLog.list();
  }

  /** The armed named fault: whether it fired and where, or why not; undefined when none was armed. */
  get fault(): FaultReport | undefined {
    return this.#fault?.report;
  }

  get isolated(): boolean {
    return this.memory.isolated;
  }

  get nics(): readonly Nic[] {
    return [...this.#nics];
  }

  /**
   * Hot-adds a synthetic NIC: the host offers it, the guest probes netvsc with this VM's strategy.
   * Returns the typed error netvsc returned when the add failed (everything it allocated is undone).
   */
  addNic(options: NicOptions = {}): { ok: true; nic: Nic } | { ok: false; error: Error } {
    const cpus = this.options.cpus ?? 2;
    const multiQueue = this.options.cpus !== undefined || options.queues !== undefined;
    const host = new Netvsp({
      ...(multiQueue ? { rssQueues: Math.min(64, cpus) } : {}),
      ...(options.netvsp ?? {}),
      isolated: this.isolated,
    });
    const hostChannel = this.server.registerDevice(
      { interfaceType: HV_NIC_GUID },
      netvspVmbusDevice(host, this.hyperv.hostView),
    );
    const offered = this.scheduler.runUntil(() => this.conn.channels.has(hostChannel.relid), "NIC offer");
    if (!offered.ok) return this.#abandon(hostChannel, offered.error);
    const deviceOptions: NetvscDeviceOptions = {
      channel: this.conn.channels.get(hostChannel.relid)!,
      scheduler: this.scheduler,
      memory: this.memory,
      strategy: this.strategy,
      dma: this.dma,
      isolated: this.isolated,
      // the connection's profile and finding log: one for every layer of this guest
      kernel: this.conn.kernel,
      ...(options.rxSections !== undefined ? { rxSections: options.rxSections } : {}),
      ...(options.txSections !== undefined ? { txSections: options.txSections } : {}),
      ...(options.ringBytes !== undefined ? { ringBytes: options.ringBytes } : {}),
      cpus,
      ...(options.queues !== undefined ? { channels: options.queues } : {}),
      onReceive: (frame) => nicRef?.onFrame?.(frame),
    };
    let nicRef: Nic | undefined;
    this.#fault?.begin("add");
    const added = NetvscDevice.add(deviceOptions);
    this.#fault?.end("add", added.ok ? undefined : added.error);
    if (!added.ok) return this.#abandon(hostChannel, added.error);
    const nic: Nic = {
      device: added.value,
      host,
      hostChannel,
      relid: hostChannel.relid,
      onFrame: options.onReceive,
    };
    nicRef = nic;
    this.#nics.add(nic);
    return { ok: true, nic };
  }

  /**
   * A failed add leaves no device behind on either side: the host rescinds the offer it made (the guest
   * releases the relid), as it would for a device that never came up.
   */
  #abandon(hostChannel: HostChannel, error: Error): { ok: false; error: Error } {
    if (hostChannel.state !== "rescinded") this.server.rescind(hostChannel.relid);
    this.scheduler.runIdle();
    return { ok: false, error };
  }

  /** Hot-removes a NIC: netvsc_remove in the guest, then the host rescinds the offer. */
  removeNic(nic: Nic): { leakedBuffers: number } {
    this.#fault?.begin("remove");
    const out = nic.device.remove();
    this.#fault?.end("remove");
    this.server.rescind(nic.relid);
    this.scheduler.runIdle();
    this.#nics.delete(nic);
    const s = nic.device.stats;
    this.#retired.parsedFromShared += s.parsedFromShared;
    this.#retired.staleCompletions += s.staleCompletions;
    this.#retired.sectionDoubleFrees += s.errors.get("send-section-not-in-use");
    return out;
  }

  /**
   * Invariants I1–I8 (see `checkVmInvariants`): an empty list when the guest is sound. O(pages) over
   * typed arrays, cheap enough to call after every step on a test-sized guest.
   */
  checkInvariants(): InvariantViolation[] {
    return checkVmInvariants(this, this.#baseline, this.#retired);
  }

  /**
   * Both verdicts at once: the model's broken invariants (a bug of the lab: always a failure) and the
   * findings (what the booted kernel would do: reported, never a failure). See `checkVmInvariants`.
   */
  audit(): { readonly violations: InvariantViolation[]; readonly findings: readonly Finding[] } {
    return { violations: this.checkInvariants(), findings: this.findings };
  }

  /** Lets guest and host run until neither has anything left to do. */
  runIdle(): number {
    return this.scheduler.runIdle();
  }

  /**
   * Pages host-visible outside the swiotlb pool and the VMBus connection's monitor pages, which stay
   * shared for the guest's life (0 after every NIC is gone, for strategies (1)–(5)).
   */
  hostVisibleOutsideSwiotlb(): number {
    const pool = this.dmaLayer.pool;
    let inPool = 0;
    if (pool) {
      for (let p = pool.boot.startPfn; p < pool.boot.startPfn + pool.boot.poolPages; p++) {
        if (this.memory.phys.hasFlag(p, PageFlag.HostVisible)) inPool++;
      }
    }
    return this.memory.phys.hostVisiblePages - inPool - this.#monitorPagesVisible();
  }

  /** vmbus_connection.monitor_pages that are host-visible (both, once connected in an isolated guest). */
  #monitorPagesVisible(): number {
    let n = 0;
    for (const page of this.conn.monitorPages)
      if (this.memory.phys.hasFlag(page.pfn, PageFlag.HostVisible)) n++;
    return n;
  }
}
