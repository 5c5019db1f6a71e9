// The runs the lab's tests compare a recording with, made straight on the packages (no recorder): the
// demo's own run for a configuration, the first GPADL header off the connection, and a device lifecycle
// whose re-encryption fails.
import { STRATEGIES } from "@ivm/catalog";
import { addNicMeasured, runTraffic, Vm } from "@ivm/vm";
import { decodeChannelMessage } from "@ivm/vmbus";
import { runOne } from "../../demo/src/run.js";
import { eraOf, type LabConfig } from "../src/model/config.js";

function entryOf(name: string) {
  const entry = STRATEGIES.find((s) => s.name === name);
  if (entry === undefined) throw new Error(`no strategy ${name}`);
  return entry;
}

/** The demo's own run (apps/demo's runOne) for a lab configuration: the numbers `ivm-demo --json` prints. */
export function demoResult(config: LabConfig, name: string) {
  const entry = entryOf(name);
  const era = eraOf(config);
  return runOne(entry, era, {
    strategies: [entry],
    era,
    kernel: config.kernel,
    hardened: config.hardened,
    memory: config.memory,
    uptime: config.uptime,
    packets: config.packets,
    seed: config.seed,
    isolation: config.isolation,
    picture: false,
    ...(config.cpus > 0 ? { cpus: config.cpus } : {}),
    ...(config.queues > 0 ? { queues: config.queues } : {}),
  }).result;
}

/** The first GPADL header of device add, read by VMBus's decoder straight off the connection. */
export function firstGpadlHeader(config: LabConfig, name: string): { gpadl: number; pfns: number } {
  const vm = Vm.boot({
    memory: config.memory,
    uptime: config.uptime,
    seed: config.seed,
    strategy: entryOf(name),
  });
  let first: { gpadl: number; pfns: number } | undefined;
  vm.conn.onMessage((m) => {
    const d = decodeChannelMessage(m.bytes);
    if (!first && d.ok && d.value.kind === "gpadl-header")
      first = { gpadl: d.value.gpadl, pfns: (d.value.rangeBufLen - 8) / 8 };
  });
  vm.addNic();
  return first!;
}

/** Device add, traffic, and a remove whose first hypercall (re-encryption) fails, straight on @ivm/vm. */
export function reencryptionFails(config: LabConfig, name: string): Vm {
  const vm = Vm.boot({
    memory: config.memory,
    kernel: config.kernel,
    hardened: config.hardened,
    uptime: config.uptime,
    seed: config.seed,
    strategy: entryOf(name),
  });
  const { nic } = addNicMeasured(vm);
  if (nic === undefined) throw new Error(`${name}: device add failed`);
  runTraffic(vm, nic, { packets: config.packets, seed: config.seed });
  vm.hyperv.hypervisor.faults.failCall(1);
  vm.removeNic(nic);
  return vm;
}
