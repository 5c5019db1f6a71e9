import type { ProfileName } from "@ivm/kernel";
import type { NetvspOutgoingKind, RecvBufCompleteTamper, XferRangeTamper } from "@ivm/netvsp";
import type { FaultName } from "@ivm/vm";

/** One byte-level edit of a recorded message: `at` is taken modulo the message length. */
export interface Mutation {
  readonly at: number;
  readonly op: "set" | "xor" | "u32";
  readonly value: number;
}

/** Which part of guest memory a shared-byte rewrite hits. */
export type RewriteArea = "recv" | "send" | "ring-in" | "ring-out" | "swiotlb";

/** A ring header field the host may scribble on. */
export type RingField = "write" | "read" | "pending" | "features" | "mask";

/** Well-formed channel messages with hostile fields (the parse succeeds; the meaning is wrong). */
export type ForgedMessage =
  | { readonly m: "gpadl-created"; readonly relid: number; readonly gpadl: number; readonly status: number }
  | { readonly m: "gpadl-torndown"; readonly gpadl: number }
  | { readonly m: "open-result"; readonly relid: number; readonly openId: number; readonly status: number }
  | { readonly m: "version-response"; readonly supported: number }
  | { readonly m: "offer"; readonly relid: number; readonly nic: boolean }
  | { readonly m: "rescind"; readonly relid: number }
  | { readonly m: "all-offers" }
  | { readonly m: "unload-response" };

/**
 * Something that goes wrong while a NIC is (re-)added: the host misbehaves at one step of the
 * handshake, or a layer fails once. Armed for the add only, disarmed after.
 */
export type DuringAdd =
  | { readonly a: "none" }
  /** The n-th channel message the host sends is dropped, delayed, mutated or sent twice. */
  | {
      readonly a: "intercept";
      readonly nth: number;
      readonly action: "drop" | "delay" | "mutate" | "twice";
      readonly rounds: number;
      readonly mutations: readonly Mutation[];
    }
  /** The host rescinds the NIC right after its n-th channel message. */
  | { readonly a: "rescind"; readonly nth: number }
  /** HvPostMessage refuses the guest's n-th post `times` times with `status`. */
  | { readonly a: "post-status"; readonly nth: number; readonly status: number; readonly times: number }
  /** The visibility hypercall misbehaves once. */
  | {
      readonly a: "hypercall";
      readonly kind: "fail" | "partial" | "too-many" | "no-progress";
      readonly k: number;
      readonly reps: number;
    }
  /** One allocation fails. */
  | { readonly a: "alloc"; readonly site: "pages" | "kmalloc" | "vmalloc" | "swiotlb"; readonly k: number }
  /** A malformed SEND_RECV_BUF_COMPLETE. */
  | { readonly a: "recv-buf"; readonly tamper: RecvBufCompleteTamper }
  /** Host section sizes out of the honest range. */
  | { readonly a: "sections"; readonly recvSectionSize: number; readonly sendSectionSize: number }
  /** The n-th netvsp packet of a kind is dropped or mutated. */
  | {
      readonly a: "netvsp";
      readonly kind: NetvspOutgoingKind;
      readonly nth: number;
      readonly drop: boolean;
      readonly mutations: readonly Mutation[];
    };

/** Standing misbehaviour of the NIC's host device, until the next `honest` or lifecycle. */
export interface Knobs {
  readonly xferRange?: XferRangeTamper;
  readonly duplicateTx?: boolean;
  readonly rxRewrite?: { readonly offset: number; readonly bytes: Uint8Array };
  /** Mutate every n-th outgoing netvsp packet of this kind. */
  readonly mutateKind?: {
    readonly kind: NetvspOutgoingKind;
    readonly every: number;
    readonly mutations: readonly Mutation[];
  };
}

/**
 * vRSS sub-channels of the (multi-queue) NIC: the host rescinds one of them, offers one it was not asked
 * for (any sub_channel_index), or the guest changes its channel count (ethtool -L) while the host's
 * SUBCHANNEL completion claims `grant` sub-channels (absent: what it really offered).
 */
export type SubchannelOp =
  | { readonly o: "rescind"; readonly nth: number }
  | { readonly o: "offer"; readonly index: number }
  | { readonly o: "queues"; readonly count: number; readonly grant?: number };

/** One campaign input step. JSON-friendly (bytes print as hex) so a reproducer can be pasted back. */
export type Action =
  | { readonly k: "traffic"; readonly tx: number; readonly rx: number; readonly seed: number }
  /** A recorded host→guest channel message, mutated and re-sent. */
  | { readonly k: "chan-mutate"; readonly template: number; readonly mutations: readonly Mutation[] }
  | { readonly k: "chan-raw"; readonly bytes: Uint8Array }
  | { readonly k: "chan-forge"; readonly msg: ForgedMessage }
  /** A recorded inbound ring packet (completion, transfer page), mutated and written into the ring. */
  | { readonly k: "pkt-mutate"; readonly template: number; readonly mutations: readonly Mutation[] }
  | { readonly k: "pkt-raw"; readonly bytes: Uint8Array }
  | { readonly k: "ring"; readonly ring: "in" | "out"; readonly field: RingField; readonly value: number }
  | { readonly k: "rewrite"; readonly area: RewriteArea; readonly offset: number; readonly bytes: Uint8Array }
  | { readonly k: "forge-completion"; readonly tid: number; readonly status: number }
  /** The host's NVSP 5 SEND_INDIRECTION_TABLE: entries at `at`, the header claiming `count` and `offset`. */
  | {
      readonly k: "send-table";
      readonly entries: readonly number[];
      readonly count: number;
      readonly offset: number;
      readonly at: number;
    }
  | { readonly k: "knobs"; readonly knobs: Knobs }
  | { readonly k: "rescind" }
  | { readonly k: "subchannel"; readonly op: SubchannelOp }
  | { readonly k: "honest" }
  /**
   * Hot-remove the NIC with the n-th visibility hypercall of the removal refused (a buffer's or the
   * ring's re-encryption fails), then add an honest one again: the path the 2024 leak fixes changed.
   */
  | { readonly k: "remove-fault"; readonly nth: number }
  /** Remove the NIC and add it again (sizes within the small range) with `during` armed. */
  | {
      readonly k: "lifecycle";
      readonly rx: number;
      readonly tx: number;
      readonly ringPages: number;
      readonly during: DuringAdd;
    };

/** A whole campaign input: the machine, the NIC, and the steps. */
export interface SessionInput {
  readonly strategy: string;
  readonly era: "address-bit" | "pte-bit";
  /** The kernel profile the guest boots (its era is `era`); absent: the era's representative, hardened. */
  readonly kernel?: ProfileName;
  /** With `kernel`: the kernel's own logic for host values no kernel checks (ring indices, rep count). */
  readonly exact?: boolean;
  /** A named fault (@ivm/vm's VM_FAULTS) armed at boot. */
  readonly fault?: FaultName;
  readonly memoryMiB: number;
  readonly rxSections: number;
  readonly txSections: number;
  readonly ringPages: number;
  readonly actions: readonly Action[];
}

/** Applies byte edits to a copy of `bytes`. */
export function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  const out = bytes.slice();
  if (out.length === 0) return out;
  const dv = new DataView(out.buffer);
  for (const m of mutations) {
    const at = m.at % out.length;
    if (m.op === "set") out[at] = m.value & 0xff;
    else if (m.op === "xor") out[at] = out[at]! ^ (m.value & 0xff || 1);
    else if (at + 4 <= out.length) dv.setUint32(at - (at % 4), m.value >>> 0, true);
  }
  return out;
}

/** JSON for reports: Uint8Array as a hex string, bigint as a decimal string. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof Uint8Array) return `hex:${Buffer.from(v).toString("hex")}`;
    if (typeof v === "bigint") return v.toString();
    return v;
  });
}

/** The inverse of `toJson` for reproducers pasted back into `--replay`. */
export function fromJson<T>(text: string): T {
  return JSON.parse(text, (_k, v: unknown) =>
    typeof v === "string" && v.startsWith("hex:") ? Uint8Array.from(Buffer.from(v.slice(4), "hex")) : v,
  ) as T;
}
