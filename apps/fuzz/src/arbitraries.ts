import type { FaultName } from "@ivm/vm";
import fc from "fast-check";
import type {
  Action,
  DuringAdd,
  ForgedMessage,
  Knobs,
  Mutation,
  SessionInput,
  SubchannelOp,
} from "./actions.js";
import { ALL_TARGETS, type Target } from "./targets.js";
import { MAX_DELAY_ROUNDS } from "./world.js";

/** Receive sections (1,728 B each) whose buffer exceeds one 510-page visibility batch: 1,216 → 513 pages. */
export const RX_SECTIONS_FOR_TWO_BATCHES = 1216;

const u32 = fc.nat({ max: 0xffff_ffff });
/** A send-table entry: a queue, one past the channels, or a u32 a u16 table cuts. */
const sendTableEntry = fc.oneof(fc.constantFrom(0, 1, 2, 7, 63, 0xffff, 0x1_0001), u32);
/** Integers that sit on the boundaries host-chosen values like to break: 0, 1, powers of two ± 1, u32 max. */
const edgy = fc.oneof(
  fc.constantFrom(0, 1, 2, 7, 8, 15, 16, 24, 67, 68, 255, 256, 4095, 4096, 4097, 65535, 65536, 0x7fff_ffff),
  fc.constantFrom(0x8000_0000, 0xffff_fff8, 0xffff_ffff),
  u32,
);
const relid = fc.oneof(fc.constantFrom(0, 1, 2, 3, 2047, 2048, 0xffff), fc.nat({ max: 4096 }));
const gpadl = fc.oneof(fc.constantFrom(0, 0xe1e10, 0xe1e11, 0xe1e12, 0xe1e13, 0xe1e14, 0xe1e1f), u32);

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat({ max: 4096 }),
  op: fc.constantFrom("set", "xor", "u32"),
  value: edgy,
});
const mutations = fc.array(mutationArb, { minLength: 1, maxLength: 4 });
const bytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });

const forged: fc.Arbitrary<ForgedMessage> = fc.oneof(
  fc.record({
    m: fc.constant("gpadl-created" as const),
    relid,
    gpadl,
    status: fc.constantFrom(0, 0xc000_0001),
  }),
  fc.record({ m: fc.constant("gpadl-torndown" as const), gpadl }),
  fc.record({ m: fc.constant("open-result" as const), relid, openId: edgy, status: fc.constantFrom(0, 1) }),
  fc.record({ m: fc.constant("version-response" as const), supported: fc.constantFrom(0, 1) }),
  fc.record({ m: fc.constant("offer" as const), relid, nic: fc.boolean() }),
  fc.record({ m: fc.constant("rescind" as const), relid }),
  fc.constant({ m: "all-offers" as const }),
  fc.constant({ m: "unload-response" as const }),
);

const outgoingKind = fc.constantFrom(
  "init-complete",
  "send-recv-buf-complete",
  "send-send-buf-complete",
  "send-rndis-pkt-complete",
  "empty-completion",
  "rx-data",
  "rx-control",
);

const during: fc.Arbitrary<DuringAdd> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ a: "none" as const }) },
  {
    weight: 4,
    arbitrary: fc.record({
      a: fc.constant("intercept" as const),
      nth: fc.integer({ min: 1, max: 24 }),
      action: fc.constantFrom("drop", "delay", "mutate", "twice"),
      rounds: fc.integer({ min: 1, max: MAX_DELAY_ROUNDS }),
      mutations,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ a: fc.constant("rescind" as const), nth: fc.integer({ min: 1, max: 24 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      a: fc.constant("post-status" as const),
      nth: fc.integer({ min: 1, max: 24 }),
      status: fc.constantFrom(0x5, 0xb, 0x12, 0x13),
      times: fc.integer({ min: 1, max: 120 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      a: fc.constant("hypercall" as const),
      kind: fc.constantFrom("fail", "partial", "too-many", "no-progress"),
      k: fc.integer({ min: 1, max: 8 }),
      reps: fc.integer({ min: 0, max: 8 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      a: fc.constant("alloc" as const),
      site: fc.constantFrom("pages", "kmalloc", "vmalloc", "swiotlb"),
      k: fc.integer({ min: 1, max: 64 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      a: fc.constant("recv-buf" as const),
      tamper: fc.constantFrom("section-size-67", "count-overflow", "offset-nonzero", "two-sections"),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      a: fc.constant("sections" as const),
      recvSectionSize: fc.constantFrom(108, 128, 1728, 4096, 9000, 65536),
      sendSectionSize: fc.constantFrom(1, 8, 67, 6144, 65536, 0x10_0000),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      a: fc.constant("netvsp" as const),
      kind: outgoingKind,
      nth: fc.integer({ min: 1, max: 6 }),
      drop: fc.boolean(),
      mutations,
    }),
  },
);

const knobs: fc.Arbitrary<Knobs> = fc.record(
  {
    xferRange: fc.constantFrom("offset-past-buffer", "length-past-section"),
    duplicateTx: fc.boolean(),
    rxRewrite: fc.record({
      offset: fc.nat({ max: 200 }),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 48 }),
    }),
    mutateKind: fc.record({ kind: outgoingKind, every: fc.integer({ min: 1, max: 4 }), mutations }),
  },
  { requiredKeys: [] },
);

/** The action mix: cheap message- and ring-level attacks dominate; a re-add under attack is rarer. */
const subchannelOp: fc.Arbitrary<SubchannelOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ o: fc.constant("rescind" as const), nth: fc.nat({ max: 7 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      o: fc.constant("offer" as const),
      index: fc.oneof(fc.constantFrom(1, 2, 3, 63, 64, 65, 0xffff), fc.integer({ min: 1, max: 0xffff })),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record(
      {
        o: fc.constant("queues" as const),
        count: fc.integer({ min: 1, max: 3 }),
        grant: fc.constantFrom(0, 1, 2, 3, 64, 0xffff_ffff),
      },
      { requiredKeys: ["o", "count"] },
    ),
  },
);

export const actionArb: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("traffic" as const),
      tx: fc.integer({ min: 0, max: 6 }),
      rx: fc.integer({ min: 0, max: 6 }),
      seed: fc.nat({ max: 1 << 20 }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("chan-mutate" as const),
      template: fc.nat({ max: 64 }),
      mutations,
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("chan-raw" as const), bytes: bytes(300) }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant("chan-forge" as const), msg: forged }) },
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant("pkt-mutate" as const), template: fc.nat({ max: 64 }), mutations }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("pkt-raw" as const), bytes: bytes(200) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("ring" as const),
      ring: fc.constantFrom("in", "out"),
      field: fc.constantFrom("write", "read", "pending", "features", "mask"),
      value: edgy,
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant("rewrite" as const),
      area: fc.constantFrom("recv", "send", "ring-in", "ring-out", "swiotlb"),
      offset: fc.nat({ max: 1 << 20 }),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("forge-completion" as const),
      tid: fc.oneof(fc.constantFrom(0, 1, 2, 3, 146, 147), u32),
      status: fc.constantFrom(1, 2),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant("send-table" as const),
      // queue numbers past the channels, and u32 entries a u16 table cuts; mostly tables the guest takes
      entries: fc.oneof(
        { weight: 3, arbitrary: fc.array(sendTableEntry, { minLength: 16, maxLength: 16 }) },
        { weight: 1, arbitrary: fc.array(sendTableEntry, { minLength: 0, maxLength: 20 }) },
      ),
      count: fc.oneof({ weight: 3, arbitrary: fc.constant(16) }, fc.constantFrom(0, 15, 17), u32),
      offset: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(12, 40) },
        fc.constantFrom(0, 41, 4096, 0xffff_ffff),
      ),
      at: fc.constantFrom(12, 40),
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("knobs" as const), knobs }) },
  { weight: 1, arbitrary: fc.constant({ k: "rescind" as const }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant("subchannel" as const), op: subchannelOp }) },
  { weight: 2, arbitrary: fc.constant({ k: "honest" as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant("remove-fault" as const), nth: fc.integer({ min: 1, max: 4 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      k: fc.constant("lifecycle" as const),
      rx: fc.integer({ min: 4, max: 48 }),
      tx: fc.integer({ min: 1, max: 8 }),
      ringPages: fc.integer({ min: 3, max: 8 }),
      during,
    }),
  },
);

/**
 * A session input for one of `targets` with between `minActions` and `maxActions` actions. Memory is
 * mostly 64 MiB (boot and page scans scale with it); 128 and 256 MiB keep larger layouts covered.
 */
export function sessionArb(
  targets: readonly Target[] = ALL_TARGETS,
  minActions = 1,
  maxActions = 40,
  fault?: FaultName,
): fc.Arbitrary<SessionInput> {
  return fc
    .record({
      target: fc.constantFrom(...targets),
      memoryMiB: fc.oneof({ weight: 8, arbitrary: fc.constant(64) }, fc.constantFrom(128, 256)),
      // A named fault on the receive buffer's second batch needs more than 510 pages (1,216 sections).
      rxSections:
        fault === "decrypt-fail" || fault === "reencrypt-fail"
          ? fc.integer({ min: RX_SECTIONS_FOR_TWO_BATCHES, max: RX_SECTIONS_FOR_TWO_BATCHES + 64 })
          : fc.integer({ min: 4, max: 48 }),
      txSections: fc.integer({ min: 1, max: 8 }),
      ringPages: fc.integer({ min: 3, max: 8 }),
      actions: fc.array(actionArb, { minLength: minActions, maxLength: maxActions }),
    })
    .map(({ target, ...rest }) => ({
      strategy: target.strategy,
      era: target.era,
      ...(target.kernel !== undefined ? { kernel: target.kernel } : {}),
      ...(target.exact ? { exact: true } : {}),
      ...(fault !== undefined ? { fault } : {}),
      ...rest,
    }));
}
