import { describe, expect, it } from "vitest";
import {
  ERA_PROFILES,
  eraProfile,
  FindingLog,
  getProfile,
  PROFILE_NAMES,
  profiles,
  UnknownKernelError,
  withHardened,
} from "../src/index.js";

describe("getProfile", () => {
  it.each(PROFILE_NAMES)("returns %s, kernel-exact, with its era derived from the hypercall row", (name) => {
    const p = getProfile(name);
    expect(p.name).toBe(name);
    expect(p.hardened).toBe(false);
    expect(p.era).toBe(p.hypercall.era.value);
  });

  it("refuses an unknown kernel with a typed error listing the known ones", () => {
    const e = (() => {
      try {
        getProfile("5.4");
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(UnknownKernelError);
    const u = e as UnknownKernelError;
    expect(u.code).toBe("EINVAL");
    expect(u.requested).toBe("5.4");
    expect(u.known).toEqual(PROFILE_NAMES);
    expect(u.message).toContain("5.17, 6.1");
  });
});

describe("withHardened", () => {
  it("keeps every behaviour and turns the stricter checks on", () => {
    const k = getProfile("5.17");
    const h = withHardened(k);
    expect(h.hardened).toBe(true);
    expect({ ...h, hardened: false }).toEqual(k);
    expect(k.hardened).toBe(false); // the table is not changed
    expect(withHardened(h)).toBe(h);
  });
});

describe("era shorthand", () => {
  it("maps each era to a profile of that era", () => {
    expect(eraProfile("address-bit")).toBe(profiles[ERA_PROFILES["address-bit"]]);
    expect(eraProfile("address-bit").era).toBe("address-bit");
    expect(eraProfile("pte-bit").era).toBe("pte-bit");
  });
});

describe("FindingLog", () => {
  const f = (id: string) => ({ id, profile: "5.17" as const, invariant: "I4", what: "w", where: "x" });

  it("is empty until something is recorded", () => {
    const log = new FindingLog();
    expect(log.count()).toBe(0);
    expect(log.list()).toEqual([]);
    expect(log.countsById().size).toBe(0);
  });

  it("records in order and counts by id", () => {
    const log = new FindingLog();
    log.record(f("CVE-2024-36913"));
    log.record(f("CVE-2024-36911"));
    log.record(f("CVE-2024-36913"));
    expect(log.list().map((x) => x.id)).toEqual(["CVE-2024-36913", "CVE-2024-36911", "CVE-2024-36913"]);
    expect(log.count()).toBe(3);
    expect(log.count("CVE-2024-36913")).toBe(2);
    expect(log.count("CVE-2024-36909")).toBe(0);
    expect([...log.countsById()]).toEqual([
      ["CVE-2024-36913", 2],
      ["CVE-2024-36911", 1],
    ]);
  });

  it("keeps the first `keep` findings and goes on counting", () => {
    const log = new FindingLog({ keep: 2 });
    for (let i = 0; i < 5; i++) log.record(f("a"));
    expect(log.list()).toHaveLength(2);
    expect(log.count("a")).toBe(5);
    expect(log.dropped).toBe(3);
    expect(() => new FindingLog({ keep: -1 })).toThrow(RangeError);
  });
});

describe("the monitor-page rows (CVE-2024-36913)", () => {
  // Stated independently of the table: 03f5a999adba is in 6.9 and was backported to 6.1.91 and 6.6.31.
  const FIXED = ["6.1.91", "6.6.31", "6.9", "6.12", "6.18"];

  it.each(PROFILE_NAMES)("%s: vmbus_disconnect frees a page it could not re-encrypt unless fixed", (name) => {
    const row = getProfile(name).vmbus.monitorPagesFreeChecksReencrypt;
    expect(row.value).toBe(FIXED.includes(name));
    expect(row.commit).toBe(FIXED.includes(name) ? "03f5a999adba" : "f2f136c05fb6");
    if (FIXED.includes(name)) expect(row.since).toBe(name === "6.1.91" || name === "6.6.31" ? name : "6.9");
  });

  it.each(PROFILE_NAMES)(
    "%s: the monitor pages are memremap'd above vTOM exactly in the address-bit era",
    (name) => {
      const p = getProfile(name);
      const row = p.vmbus.monitorPageMapping;
      expect(row.value).toBe(p.era === "address-bit" ? "memremap-shared-alias" : "direct-map");
      expect(row.commit).toBe(p.era === "address-bit" ? "f2f136c05fb6" : "a5ddb7458821");
    },
  );
});
