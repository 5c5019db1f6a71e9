/**
 * Which CPU a channel interrupts: mirrors init_vp_index and hv_cpuself_used (drivers/hv/channel_mgmt.c),
 * the hv_set/clear/is_allocated_cpu helpers (drivers/hv/hyperv_vmbus.h) and hv_cpu_number_to_vp_number
 * (__vmbus_open puts the chosen CPU's VP number in CHANNELMSG_OPENCHANNEL's target_vp).
 *
 * The kernel keeps, per boot, one "allocated" cpumask per NUMA node (hv_context.hv_numa_map[]) and a
 * round-robin cursor over the nodes (next_numa_node_id); a VmbusCpuAllocator is that state for one
 * connection. The rules, and the commits that made them what the profiles run:
 *
 * - A channel of a device that is not performance critical (vmbus_devs[].perf_device false; hv_sock and
 *   unknown if_types count as HV_UNKNOWN) goes to VMBUS_CONNECT_CPU and leaves the masks alone.
 * - A performance channel takes the next NUMA node with CPUs (every channel advances the cursor,
 *   sub-channels too: the primary does not pin its sub-channels to its node since the HV_LOCALIZED
 *   policy went, 5.8), then the lowest CPU of that node not yet allocated, and marks it allocated. When
 *   every CPU of the node is allocated the node's mask is cleared first and the walk starts over at its
 *   lowest CPU.
 * - hv_cpuself_used (7c9ff3deeee6, 5.14): a CPU the same device already uses (its primary's, or another
 *   of its sub-channels') is refused and the walk goes on — up to num_online_cpus() + 1 tries, and not at
 *   all for a sub-channel whose index is at least num_online_cpus(). A refused CPU stays marked allocated.
 * - 5.19 (a6b94c6b4919) dropped the WS2008/WIN7 rule that bound every channel to VMBUS_CONNECT_CPU on
 *   those hosts, and (6640b5df1a38) made only housekeeping CPUs candidates (not those isolated with
 *   `isolcpus=managed_irq,…`): no housekeeping CPU at all binds every channel to VMBUS_CONNECT_CPU, and
 *   a node with nothing left is cleared and walked again (profile.vmbus.initVpIndex says which form).
 * - A performance channel bound to VMBUS_CONNECT_CPU without the walk still marks CPU 0 allocated
 *   (afaa33da08ab, 5.8).
 * - hv_process_channel_removal gives a performance channel's CPU back (afaa33da08ab) unless another
 *   performance channel still listed targets it (hv_is_allocated_cpu).
 *
 * The model's VP numbers equal CPU numbers (hv_vp_index[cpu] as Hyper-V reports it for a guest whose
 * vCPUs are numbered in order); every CPU is online.
 */
import type { InitVpIndexForm } from "@ivm/kernel";
import { err, ok, type Result } from "./errors.js";
import { VMBUS_VERSION } from "./wire/channel-message.js";

/** VMBUS_CONNECT_CPU (hyperv_vmbus.h): the CPU vmbus_connect runs on and legacy channels interrupt. */
export const VMBUS_CONNECT_CPU = 0;

/** The CPUs the guest runs: num_online_cpus(), their NUMA nodes and the isolated ones. */
export interface CpuTopology {
  /** num_online_cpus(): CPUs 0..cpus-1, all online. */
  readonly cpus: number;
  /**
   * cpumask_of_node() for node 0, 1, … (nr_node_ids = the length; a node may be empty). Default: one
   * node holding every CPU.
   */
  readonly numaNodes?: readonly (readonly number[])[];
  /**
   * CPUs outside housekeeping_cpumask(HK_TYPE_MANAGED_IRQ) (`isolcpus=managed_irq,<list>`). Default none.
   * Kernels before 5.19 do not look at it.
   */
  readonly isolatedCpus?: readonly number[];
}

/** What init_vp_index and hv_is_allocated_cpu read of a channel (struct vmbus_channel's fields). */
export interface VpIndexChannel {
  /** channel->target_cpu. */
  readonly targetCpu: number;
  /** hv_is_perf_channel(channel): vmbus_devs[device_id].perf_device. */
  readonly perfChannel: boolean;
  readonly primaryChannel: VpIndexChannel | undefined;
  /** The primary's sc_list (empty on a sub-channel). */
  readonly subChannels: readonly VpIndexChannel[];
}

/** The offer init_vp_index is asked about (the channel does not exist yet in the model). */
export interface VpIndexRequest {
  readonly perfChannel: boolean;
  /** The primary a sub-channel (or a duplicate primary) was matched with (channel->primary_channel). */
  readonly primary: VpIndexChannel | undefined;
  readonly subChannelIndex: number;
  /** vmbus_proto_version. */
  readonly version: number;
}

/** hv_cpu_number_to_vp_number: the model numbers VPs as CPUs. */
export function cpuToVp(cpu: number): number {
  return cpu;
}

/** The topology checked: every CPU in exactly one node, isolated CPUs that exist. */
export function checkTopology(t: CpuTopology): Result<void> {
  const bad = (m: string): Result<void> => err("EINVAL", "cpu-topology", m);
  if (!Number.isInteger(t.cpus) || t.cpus < 1 || t.cpus > 4096)
    return bad(`cpus must be an integer in [1, 4096], got ${t.cpus}`);
  const seen = new Uint8Array(t.cpus);
  if (t.numaNodes !== undefined) {
    if (t.numaNodes.length === 0) return bad("numaNodes lists no node");
    for (const [n, node] of t.numaNodes.entries()) {
      for (const c of node) {
        if (!Number.isInteger(c) || c < 0 || c >= t.cpus) return bad(`node ${n} lists cpu ${c} of ${t.cpus}`);
        if (seen[c] !== 0) return bad(`cpu ${c} is in two nodes`);
        seen[c] = 1;
      }
    }
    const missing = seen.indexOf(0);
    if (missing >= 0) return bad(`cpu ${missing} is in no node`);
  }
  for (const c of t.isolatedCpus ?? []) {
    if (!Number.isInteger(c) || c < 0 || c >= t.cpus) return bad(`isolated cpu ${c} of ${t.cpus}`);
  }
  return ok(undefined);
}

/** What one init_vp_index call did (for tests and traces): the CPU and the CPUs it refused. */
export interface VpIndexChoice {
  readonly cpu: number;
  /** CPUs hv_cpuself_used refused before `cpu` (each left marked allocated). */
  readonly refused: readonly number[];
  /**
   * The housekeeping form found a node with no housekeeping CPU: the kernel clears the node's mask and
   * walks it again for ever (the model stops and binds the channel to VMBUS_CONNECT_CPU).
   */
  readonly loopsForever: boolean;
}

/** hv_context.hv_numa_map[] and next_numa_node_id of one boot. */
export class VmbusCpuAllocator {
  readonly cpus: number;
  /** Each node's CPUs in ascending order (cpumask_of_node). */
  readonly nodes: readonly (readonly number[])[];
  readonly #nodeOf: Uint16Array;
  readonly #housekeeping: Uint8Array;
  readonly #housekeepingCount: number;
  /** One bit per CPU: set in hv_numa_map[cpu_to_node(cpu)]. */
  readonly #allocated: Uint8Array;
  #nextNode = 0;

  /** Throws the EINVAL VmbusError of checkTopology for a topology that cannot exist. */
  constructor(topology: CpuTopology) {
    const checked = checkTopology(topology);
    if (!checked.ok) throw checked.error;
    this.cpus = topology.cpus;
    const all = Array.from({ length: this.cpus }, (_, i) => i);
    this.nodes = (topology.numaNodes ?? [all]).map((n) => [...n].sort((a, b) => a - b));
    this.#nodeOf = new Uint16Array(this.cpus);
    for (const [n, node] of this.nodes.entries()) for (const c of node) this.#nodeOf[c] = n;
    this.#housekeeping = new Uint8Array(this.cpus).fill(1);
    for (const c of topology.isolatedCpus ?? []) this.#housekeeping[c] = 0;
    this.#housekeepingCount = this.#housekeeping.reduce((s, v) => s + v, 0);
    this.#allocated = new Uint8Array(this.cpus);
  }

  /** The CPUs of `node` marked allocated (hv_numa_map[node]), ascending. */
  allocated(node = 0): number[] {
    return (this.nodes[node] ?? []).filter((c) => this.#allocated[c] !== 0);
  }

  /** cpu_to_node. */
  nodeOf(cpu: number): number {
    return this.#nodeOf[cpu] ?? 0;
  }

  /** init_vp_index: the channel's target_cpu, with the masks updated as the booted kernel does. */
  initVpIndex(req: VpIndexRequest, form: InitVpIndexForm): VpIndexChoice {
    const legacy = req.version === VMBUS_VERSION.WS2008 || req.version === VMBUS_VERSION.WIN7;
    const pinned =
      !req.perfChannel ||
      (form === "node-cpus" && legacy) ||
      (form === "housekeeping-cpus" && this.#housekeepingCount === 0);
    if (pinned) {
      if (req.perfChannel) this.#allocated[VMBUS_CONNECT_CPU] = 1; // hv_set_allocated_cpu
      return { cpu: VMBUS_CONNECT_CPU, refused: [], loopsForever: false };
    }
    const ncpu = this.cpus;
    const refused: number[] = [];
    let target = VMBUS_CONNECT_CPU;
    for (let i = 1; i <= ncpu + 1; i++) {
      const node = this.nodes[this.#takeNode()]!;
      const cpu = form === "node-cpus" ? this.#firstFree(node, false) : this.#firstFreeHousekeeping(node);
      if (cpu < 0) return { cpu: VMBUS_CONNECT_CPU, refused, loopsForever: true };
      this.#allocated[cpu] = 1;
      target = cpu;
      if (req.subChannelIndex >= ncpu || i > ncpu || !cpuselfUsed(cpu, req.primary)) break;
      refused.push(cpu);
    }
    return { cpu: target, refused, loopsForever: false };
  }

  /**
   * hv_clear_allocated_cpu, from hv_process_channel_removal of a performance channel already taken off
   * the lists: the CPU goes back unless a performance channel in `primaries` (chn_list) or one of their
   * sub-channels still targets it.
   */
  releaseCpu(cpu: number, primaries: Iterable<VpIndexChannel>): void {
    for (const p of primaries) {
      if (p.primaryChannel !== undefined || !p.perfChannel) continue;
      if (p.targetCpu === cpu) return;
      for (const sc of p.subChannels) if (sc.targetCpu === cpu) return;
    }
    this.#allocated[cpu] = 0;
  }

  /** next_numa_node_id++, wrapping at nr_node_ids and skipping nodes without CPUs. */
  #takeNode(): number {
    for (;;) {
      const n = this.#nextNode++;
      if (n >= this.nodes.length) {
        this.#nextNode = 0;
        continue;
      }
      if (this.nodes[n]!.length > 0) return n;
    }
  }

  /** 5.14–5.18: a node whose CPUs are all allocated is cleared, then its first free CPU. */
  #firstFree(node: readonly number[], housekeepingOnly: boolean): number {
    if (!housekeepingOnly && node.every((c) => this.#allocated[c] !== 0)) {
      for (const c of node) this.#allocated[c] = 0;
    }
    for (const c of node) {
      if (this.#allocated[c] === 0 && (!housekeepingOnly || this.#housekeeping[c] !== 0)) return c;
    }
    return -1;
  }

  /** 5.19+: the first free housekeeping CPU; none left clears the node and retries (for ever if none is). */
  #firstFreeHousekeeping(node: readonly number[]): number {
    const c = this.#firstFree(node, true);
    if (c >= 0) return c;
    for (const x of node) this.#allocated[x] = 0;
    return this.#firstFree(node, true);
  }
}

/**
 * hv_cpuself_used: whether `cpu` is the target of the device's primary or of one of its sub-channels.
 * The channel being placed is not on the sc_list yet (vmbus_process_offer adds it after init_vp_index).
 */
function cpuselfUsed(cpu: number, primary: VpIndexChannel | undefined): boolean {
  if (primary === undefined) return false;
  if (primary.targetCpu === cpu) return true;
  return primary.subChannels.some((sc) => sc.targetCpu === cpu);
}
