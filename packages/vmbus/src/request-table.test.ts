import { describe, expect, it } from "vitest";
import { RequestTable } from "./request-table.js";

describe("RequestTable (vmbus_requestor)", () => {
  it("hands out slot + 1, never 0, and reuses freed slots LIFO", () => {
    const t = new RequestTable<string>(3);
    expect([t.allocate("a"), t.allocate("b"), t.allocate("c")]).toEqual([1, 2, 3]);
    expect(t.allocate("d")).toBeUndefined();
    expect(t.fullCount).toBe(1);
    expect(t.complete(2n)).toEqual({ ok: true, value: "b" });
    expect(t.allocate("e")).toBe(2);
    expect(t.outstanding).toBe(3);
  });

  it("a large table hands out ids in order from its first slot and reuses the last freed first", () => {
    const t = new RequestTable<number>(42_459);
    const ids = Array.from({ length: 1000 }, (_, i) => t.allocate(i));
    expect(ids).toEqual(Array.from({ length: 1000 }, (_, i) => i + 1));
    for (const id of [500, 7, 999]) expect(t.complete(BigInt(id))).toEqual({ ok: true, value: id - 1 });
    expect([t.allocate(-1), t.allocate(-2), t.allocate(-3), t.allocate(-4)]).toEqual([999, 7, 500, 1001]);
    expect(t.complete(7n)).toEqual({ ok: true, value: -2 });
    expect(t.outstanding).toBe(1000);
  });

  it("rejects forged, duplicate, unknown and mismatched completions and counts them", () => {
    const t = new RequestTable<object>(4);
    const ctx = {};
    const id = t.allocate(ctx)!;
    expect(t.complete(0n)).toMatchObject({ ok: false, error: { reason: "zero-id" } });
    expect(t.complete(5n)).toMatchObject({ ok: false, error: { reason: "out-of-range" } });
    expect(t.complete(0xffff_ffff_ffff_fffen)).toMatchObject({
      ok: false,
      error: { reason: "out-of-range" },
    });
    expect(t.complete(3n)).toMatchObject({ ok: false, error: { reason: "not-outstanding" } });
    expect(t.complete(BigInt(id), {})).toMatchObject({ ok: false, error: { reason: "mismatch" } });
    expect(t.isOutstanding(BigInt(id))).toBe(true); // a mismatch does not free the slot
    expect(t.complete(BigInt(id), ctx)).toEqual({ ok: true, value: ctx });
    expect(t.complete(BigInt(id))).toMatchObject({ ok: false, error: { reason: "not-outstanding" } }); // duplicate
    expect(t.rejected).toEqual({ "zero-id": 1, "out-of-range": 2, "not-outstanding": 2, mismatch: 1 });
  });
});
