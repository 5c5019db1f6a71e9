import type { NetvscDevice } from "@ivm/netvsc";
import type { Nic, Vm } from "@ivm/vm";

/** Counts by stable key ("layer:reason"), summed across inputs, sessions and workers. */
export type Tally = Map<string, number>;

export function bump(t: Tally, key: string, n = 1): void {
  if (n !== 0) t.set(key, (t.get(key) ?? 0) + n);
}

export function mergeInto(into: Tally, from: Tally | Readonly<Record<string, number>>): void {
  const entries = from instanceof Map ? from.entries() : Object.entries(from);
  for (const [k, v] of entries) bump(into, k, v);
}

function addRecord(t: Tally, prefix: string, rec: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(rec)) bump(t, `${prefix}:${k}`, v);
}

/**
 * What a NIC's layers refused or clamped while it lived: the driver's drop and rejection counters, the
 * inbound ring's clamps and corrupt-index reports, and the host device's own rejections of guest input.
 * Read just before the NIC goes away (its counters go with it).
 */
export function collectNic(t: Tally, nic: Nic): void {
  collectDevice(t, nic.device);
  addRecord(t, "host-netvsp", nic.host.counters.rejections.snapshot());
  bump(t, "netvsc:rx-completions-lost", nic.device.stats.rxCompletionsLost);
}

function collectDevice(t: Tally, dev: NetvscDevice): void {
  const s = dev.stats;
  addRecord(t, "netvsc-rx-drop", s.rxDrops.snapshot());
  addRecord(t, "netvsc-completion-rejected", s.rejectedCompletions.snapshot());
  addRecord(t, "netvsc-tx-drop", s.txDrops.snapshot());
  addRecord(t, "netvsc-error", s.errors.snapshot());
}

/** The inbound ring's clamps and corrupt reports of a NIC's channel, while it is open. */
export function collectRing(t: Tally, vm: Vm, relid: number): void {
  const ring = vm.conn.channels.get(relid)?.inbound;
  if (ring === undefined) return;
  const c = ring.counters;
  addRecord(t, "vmbus-ring-clamp", c.clamps);
  addRecord(t, "vmbus-ring-corrupt", c.corrupt);
  bump(t, "vmbus-ring:budget-exhausted", c.budgetExhausted);
}

/** Connection-wide refusals: dropped channel messages, refused host accesses, untrusted hypercall answers. */
export function collectVm(t: Tally, vm: Vm): void {
  addRecord(t, "vmbus-msg-drop", vm.conn.counters.dropped);
  bump(t, "vmbus:post-failures", vm.conn.counters.postFailures);
  addRecord(t, "host-server-drop", vm.server.counters.dropped);
  bump(t, "host-server:gpadls-failed", vm.server.counters.gpadlsFailed);
  bump(t, "host-server:opens-refused", vm.server.counters.opensRefused);
  bump(t, "host-view:refused", vm.hyperv.hostView.refused);
  bump(t, "hypercall:untrusted-answers", vm.hyperv.hypercalls.untrustedAnswers);
  bump(t, "set-memory:failures", vm.hyperv.setMemory.counters.failures);
  bump(t, "memory:leaked-pages", vm.memory.leakedPages);
}
