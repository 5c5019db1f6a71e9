// The VM's vCPUs reach VMBus: init_vp_index spreads a multi-queue NIC's channels over them, and each
// OPENCHANNEL names the chosen VP (packages/vmbus/src/vp-index.ts has the rules and the unit tests).

import { vmallocRemap } from "@ivm/strategy-vmalloc-remap";
import { CHANNELMSG, decodeChannelMessage } from "@ivm/vmbus";
import { describe, expect, it } from "vitest";
import { Vm } from "../src/vm.js";

const MiB = 2 ** 20;

/** target_vp of each OPENCHANNEL the guest posted since `from`, in order. */
function openedVps(vm: Vm, from = 0): number[] {
  const vps: number[] = [];
  for (const e of vm.messages.slice(from)) {
    if (e.direction !== "guest-to-host" || e.type !== CHANNELMSG.OPENCHANNEL) continue;
    const m = decodeChannelMessage(e.bytes);
    if (m.ok && m.value.kind === "open-channel") vps.push(m.value.targetVp);
  }
  return vps;
}

describe("target VP of a NIC's channels", () => {
  it("--cpus 1: the primary opens on VP 0", () => {
    const vm = Vm.boot({ memory: 512 * MiB, cpus: 1, strategy: vmallocRemap });
    const a = vm.addNic({ queues: 4 });
    expect(a.ok).toBe(true);
    expect(openedVps(vm)).toEqual([0]); // max_chn = min(cpus, host queues) = 1: no sub-channel
  });

  it("--cpus 8 --queues 8: the primary and its 7 sub-channels open on VP 0..7; a re-added NIC gets them again", () => {
    const vm = Vm.boot({ memory: 512 * MiB, cpus: 8, strategy: vmallocRemap });
    const a = vm.addNic({ queues: 8 });
    if (!a.ok) throw a.error;
    expect(openedVps(vm)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    vm.removeNic(a.nic);
    // hv_process_channel_removal gave the eight CPUs back: the same spread, not a wrapped one.
    expect(vm.conn.cpuAllocator.allocated()).toEqual([]);
    const from = vm.messages.length;
    const b = vm.addNic({ queues: 8 });
    if (!b.ok) throw b.error;
    expect(openedVps(vm, from)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it("two NICs at once on 4 vCPUs: the second one starts over at VP 0 once the node's CPUs are all taken", () => {
    const vm = Vm.boot({ memory: 512 * MiB, cpus: 4, strategy: vmallocRemap });
    const a = vm.addNic({ queues: 2 });
    const b = vm.addNic({ queues: 4 });
    expect(a.ok && b.ok).toBe(true);
    // A: 0, 1. B: 2, 3, then the node is full and cleared: 0 (not B's), 1.
    expect(openedVps(vm)).toEqual([0, 1, 2, 3, 0, 1]);
  });
});
