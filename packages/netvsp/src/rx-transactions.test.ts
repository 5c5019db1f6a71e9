import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { newRxTransaction, type RxTransaction, RxTransactionTable } from "./rx-transactions.js";

const record = (tid: number): RxTransaction => newRxTransaction(tid);

describe("RxTransactionTable", () => {
  it("finds, removes and forgets records by trans_id, past its first growth", () => {
    const table = new RxTransactionTable();
    const records = Array.from({ length: 300 }, (_, i) => record(i + 1));
    for (const r of records) table.set(r);
    expect(table.size).toBe(300);
    expect(table.get(77)).toBe(records[76]);
    expect(table.delete(77)).toBe(true);
    expect(table.delete(77)).toBe(false);
    expect(table.get(77)).toBeUndefined();
    expect(table.get(301)).toBeUndefined();
    expect(table.size).toBe(299);
    // Same low bits, far apart: both found.
    const far = record(2 ** 40 + 5);
    table.set(far);
    expect([table.get(5), table.get(2 ** 40 + 5)]).toEqual([records[4], far]);
    table.clear();
    expect([table.size, table.get(5)]).toEqual([0, undefined]);
  });

  // The table answers as a Map would, whatever the order of adds and removals.
  test.prop([
    fc.array(fc.tuple(fc.boolean(), fc.oneof(fc.integer({ min: 0, max: 200 }), fc.maxSafeNat())), {
      maxLength: 400,
    }),
  ])("behaves as a Map keyed by trans_id", (ops) => {
    const table = new RxTransactionTable();
    const model = new Map<number, RxTransaction>();
    for (const [add, tid] of ops) {
      if (add) {
        const r = record(tid);
        table.set(r);
        model.set(tid, r);
      } else expect(table.delete(tid)).toBe(model.delete(tid));
      expect(table.size).toBe(model.size);
      expect(table.get(tid)).toBe(model.get(tid));
    }
    for (const [tid, r] of model) expect(table.get(tid)).toBe(r);
  });
});
