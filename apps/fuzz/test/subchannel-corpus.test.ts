// Deterministic corpus for the vRSS sub-channel failure paths (issue #19): one named session per path,
// replayed through the same runSession as the campaign (the fuzz world's NIC has two vCPUs: the primary
// and one sub-channel). Each must reach its path (the counted reason says so) with 0 violations, and the
// NIC must still carry traffic on the channels it kept.
import { describe, expect, it } from "vitest";
import type { Action, DuringAdd, SessionInput } from "../src/actions.js";
import { runSession } from "../src/session.js";

const NIC = { rxSections: 12, txSections: 3, ringPages: 4 } as const;
const traffic: Action = { k: "traffic", tx: 3, rx: 3, seed: 9 };

function run(actions: readonly Action[]) {
  const input: SessionInput = {
    strategy: "vmalloc-remap",
    era: "address-bit",
    memoryMiB: 64,
    ...NIC,
    actions,
  };
  const r = runSession(input);
  expect(r.violations).toEqual([]);
  return r.tally;
}

/** Re-add the NIC with `during` armed (the n-th host channel message of the add), then traffic. */
const readd = (during: DuringAdd): Action => ({ k: "lifecycle", rx: 12, tx: 3, ringPages: 4, during });

describe("sub-channel failure paths (corpus)", () => {
  it("a grant above the request: rndis_set_subchannel's EINVAL, the NIC keeps its primary", () => {
    const t = run([
      { k: "subchannel", op: { o: "queues", count: 1 } },
      { k: "subchannel", op: { o: "queues", count: 2, grant: 5 } },
      traffic,
    ]);
    expect(t.get("netvsc-error:subchannel-count-invalid")).toBe(1);
    // The re-attach itself works: one channel, traffic verified on it.
    expect(t.get("subchannel:set-channels-ok")).toBe(2);
    // Channels open after each step, summed: 1 after ethtool -L 1, then 2: the host really offered one
    // sub-channel, netvsc_sc_open opened it before the completion came, and like the kernel the
    // fallback leaves it open (num_chn is 1: transmit uses the primary only) until the device goes.
    expect(t.get("subchannel:channels-open")).toBe(3);
  });

  it("zero granted after the offer was opened: the kernel's endless wait (finding), one channel, traffic", () => {
    const t = run([
      { k: "subchannel", op: { o: "queues", count: 1 } },
      { k: "subchannel", op: { o: "queues", count: 2, grant: 0 } },
      traffic,
    ]);
    expect(t.get("subchannel:set-channels-ok")).toBe(2);
    expect(t.get("subchannel:channels-open")).toBe(3); // as above: the offered one stays open
    // netvsc_sc_open counted the offer before the completion set num_chn to 1: open_chn 2 can never
    // equal it, so rndis_set_subchannel's wait would never end; the model times it out and falls back.
    expect(t.get("finding:subchannel-open-past-grant")).toBe(1);
    expect([...t.keys()].filter((k) => k.startsWith("netvsc-error:subchannel"))).toEqual([
      "netvsc-error:subchannel-open-timed-out",
    ]);
    expect(t.get("traffic:rx-delivered")).toBeGreaterThan(0);
  });

  it("granted but never offered (the sub-channel's OFFERCHANNEL dropped): the wait ends, one channel", () => {
    // Host channel messages of the add: 1-2 primary ring GPADL and open, 3-5 NVSP and buffer GPADLs,
    // 6 the sub-channel's offer.
    const t = run([readd({ a: "intercept", nth: 6, action: "drop", rounds: 0, mutations: [] }), traffic]);
    expect(t.get("netvsc-error:subchannel-open-timed-out")).toBe(1);
    expect(t.get("outcome:add-ok")).toBeGreaterThanOrEqual(2);
  });

  it("a rescind while the sub-channel is opening: its open fails, the primary carries on", () => {
    const t = run([readd({ a: "rescind", nth: 7 }), traffic]);
    expect(t.get("lifecycle:rescind")).toBe(1);
    expect(t.get("netvsc-error:subchannel-open-failed")).toBe(1);
    expect(t.get("outcome:add-ok")).toBeGreaterThanOrEqual(2);
    expect(t.get("traffic:rx-delivered")).toBeGreaterThan(0);
  });
});
