import { describe, expect, it } from "vitest";
import { DEFAULT_MESSAGE_LOG, Vm } from "../src/index.js";
import { CASES } from "./cases.js";

const MiB = 2 ** 20;
const strategy = CASES[0]!;

/** Channel messages of one NIC add and remove on a fresh VM (keeping them all). */
function messagesPerCycle(): number {
  const vm = Vm.boot({ memory: 512 * MiB, strategy, messageLog: Number.POSITIVE_INFINITY });
  const before = vm.messages.length;
  const added = vm.addNic();
  if (!added.ok) throw added.error;
  vm.removeNic(added.nic);
  return vm.messages.length - before;
}

describe("Vm.messages, the channel message log", () => {
  it("keeps the newest messageLog messages across NIC adds, oldest dropped first and counted", () => {
    const perCycle = messagesPerCycle();
    expect(perCycle).toBeGreaterThan(20);
    const keep = Math.floor(perCycle * 1.5);
    const all = Vm.boot({ memory: 512 * MiB, strategy, messageLog: Number.POSITIVE_INFINITY });
    const capped = Vm.boot({ memory: 512 * MiB, strategy, messageLog: keep });
    for (const vm of [all, capped]) {
      for (let i = 0; i < 3; i++) {
        const added = vm.addNic();
        if (!added.ok) throw added.error;
        expect(vm.removeNic(added.nic).leakedBuffers).toBe(0);
      }
    }
    expect(all.messagesDropped).toBe(0);
    expect(capped.messages.length).toBe(keep);
    expect(capped.messagesDropped).toBe(all.messages.length - keep);
    // the same messages, in order: the newest `keep` of the full log
    const tail = all.messages.slice(-keep);
    expect(capped.messages.map((e) => [e.direction, [...e.bytes]])).toEqual(
      tail.map((e) => [e.direction, [...e.bytes]]),
    );
  });

  it("keeps none with 0 and bounds a default VM at DEFAULT_MESSAGE_LOG", () => {
    const none = Vm.boot({ memory: 512 * MiB, strategy, messageLog: 0 });
    const added = none.addNic();
    if (!added.ok) throw added.error;
    expect(none.messages).toEqual([]);
    expect(none.messagesDropped).toBeGreaterThan(0);

    const vm = Vm.boot({ memory: 512 * MiB, strategy });
    const cycles = Math.ceil(DEFAULT_MESSAGE_LOG / messagesPerCycle()) + 1;
    for (let i = 0; i < cycles; i++) {
      const nic = vm.addNic();
      if (!nic.ok) throw nic.error;
      vm.removeNic(nic.nic);
    }
    expect(vm.messages.length).toBe(DEFAULT_MESSAGE_LOG);
    expect(vm.messagesDropped).toBeGreaterThan(0);
  });

  it.each([-1, 1.5, Number.NaN, "10"])("refuses messageLog %s before booting anything", (bad) => {
    expect(() => Vm.boot({ memory: 512 * MiB, strategy, messageLog: bad as number })).toThrow(
      /messageLog must be a count of messages/,
    );
  });
});
