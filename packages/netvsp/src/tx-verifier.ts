// The host's side of the guest's send path: gather the RNDIS bytes a SEND_RNDIS_PKT describes (a send
// buffer section, GPA-direct page ranges, or a section followed by ranges, as netvsc_send's partial
// copy produces) into one host-private buffer, then walk the RNDIS messages in it. Mirrors OpenVMM's
// parse_packet (send_buffer_suballocation via try_subrange, InvalidSendBufferIndex), Packet::
// rndis_reader (section first, then the external ranges) and handle_rndis_packet_message.

import { NETVSC_INVALID_INDEX, type NetvscResult, ok, PAGE_SIZE, reject } from "@ivm/netvsc-protocol";
import { type GpaDirectRange, readU32 } from "@ivm/vmbus";
import { fitsInView } from "./host-buffer.js";
import type { HostGpadlView, HostGuestMemory } from "./ports.js";

/** Largest PFN whose byte address is still an exact JS number. */
const MAX_SAFE_PFN = Math.floor(Number.MAX_SAFE_INTEGER / PAGE_SIZE) - 1;

export type TxGatherRejectReason =
  | "send-buffer-not-mapped"
  | "send-section-out-of-range"
  | "send-buffer-access-refused"
  | "gpa-direct-unavailable"
  | "gpa-direct-pfn-out-of-range"
  | "gpa-direct-access-refused"
  | "tx-message-empty"
  | "tx-message-too-long";

export interface TxSources {
  readonly sendBuffer: HostGpadlView | undefined;
  readonly sendSectionSize: number;
  readonly guestMemory: HostGuestMemory | undefined;
  /** Cap on the gathered bytes (a guest can describe far more than it could ever mean). */
  readonly maxBytes: number;
  /**
   * A host-owned gather buffer reused between messages (grown when a message needs more): the result
   * is then a view of it, valid until the next gather. Without it every message gets a fresh buffer.
   */
  readonly scratch?: TxGatherScratch;
}

/** gatherTxBytes' reused buffer, and what it keeps between messages so that a steady stream allocates nothing. */
export interface TxGatherScratch {
  buffer: Uint8Array;
  /** The last result's view of `buffer`, its section part, and the result object (reused while lengths repeat). */
  view?: Uint8Array;
  /** The buffer `view` was made over (compared instead of its .buffer, a costly getter). */
  viewOf?: Uint8Array;
  sectionView?: Uint8Array | undefined;
  result?: { readonly ok: true; readonly value: Uint8Array };
}

/**
 * Copy the bytes of one SEND_RNDIS_PKT into a host-private buffer (fresh, or `src.scratch`). Nothing the guest supplied
 * (section index and size, range lengths, PFNs) is used before it is bounds-checked, and a refused
 * access (a page the host may not see) becomes a typed rejection, never a throw.
 */
export function gatherTxBytes(
  sectionIndex: number,
  sectionSize: number,
  ranges: readonly GpaDirectRange[],
  src: TxSources,
): NetvscResult<Uint8Array, TxGatherRejectReason> {
  let sectionOffset = 0;
  let sectionLen = 0;
  if (sectionIndex !== NETVSC_INVALID_INDEX) {
    if (src.sendBuffer === undefined) {
      return reject("EINVAL", "send-buffer-not-mapped", `send section ${sectionIndex} without a send buffer`);
    }
    sectionOffset = sectionIndex * src.sendSectionSize;
    sectionLen = sectionSize;
    // OpenVMM bounds the sub-range by the whole send buffer, not by the section: so does the model.
    if (!fitsInView(src.sendBuffer, sectionOffset, sectionLen)) {
      return reject(
        "EINVAL",
        "send-section-out-of-range",
        `send section ${sectionIndex} size ${sectionSize} outside ${src.sendBuffer.size} bytes`,
      );
    }
  }
  let total = sectionLen;
  for (const r of ranges) total += r.len;
  if (total === 0) return reject("EINVAL", "tx-message-empty", "SEND_RNDIS_PKT without any bytes");
  if (total > src.maxBytes) {
    return reject("EINVAL", "tx-message-too-long", `${total} bytes described, at most ${src.maxBytes}`);
  }
  let out: Uint8Array;
  let result: { readonly ok: true; readonly value: Uint8Array } | undefined;
  let sectionView: Uint8Array | undefined;
  const scratch = src.scratch;
  if (scratch === undefined) out = new Uint8Array(total);
  else {
    if (scratch.buffer.length < total) {
      scratch.buffer = new Uint8Array(Math.max(total, 2 * scratch.buffer.length));
    }
    // The views (and the result) of the previous message serve while its lengths repeat.
    let view = scratch.view;
    if (view === undefined || view.length !== total || scratch.viewOf !== scratch.buffer) {
      view = scratch.buffer.subarray(0, total);
      scratch.view = view;
      scratch.viewOf = scratch.buffer;
      scratch.result = ok(view);
      scratch.sectionView = undefined;
    }
    out = view;
    result = scratch.result;
    if (sectionLen > 0) {
      sectionView = scratch.sectionView;
      if (sectionView === undefined || sectionView.length !== sectionLen) {
        sectionView = sectionLen === total ? view : view.subarray(0, sectionLen);
        scratch.sectionView = sectionView;
      }
    }
  }
  if (sectionLen > 0) {
    try {
      src.sendBuffer!.read(sectionOffset, sectionView ?? out.subarray(0, sectionLen));
    } catch (e) {
      return reject("EINVAL", "send-buffer-access-refused", `send buffer read refused: ${String(e)}`);
    }
  }
  if (ranges.length === 0) return result ?? ok(out);
  const mem = src.guestMemory;
  if (mem === undefined) {
    return reject("EINVAL", "gpa-direct-unavailable", "no host view of guest memory for GPA-direct data");
  }
  let pos = sectionLen;
  for (const r of ranges) {
    let left = r.len;
    let pageOff = r.offset;
    let i = 0;
    while (left > 0) {
      const pfn = r.pfns[i]!;
      if (pfn > MAX_SAFE_PFN) {
        return reject("EINVAL", "gpa-direct-pfn-out-of-range", `PFN ${pfn} is not an addressable page`);
      }
      // Coalesce physically consecutive pages into one read.
      let chunk = Math.min(PAGE_SIZE - pageOff, left);
      let j = i + 1;
      while (chunk < left && j < r.pfns.length && r.pfns[j] === pfn + (j - i)) {
        chunk += Math.min(PAGE_SIZE, left - chunk);
        j++;
      }
      try {
        mem.read(pfn * PAGE_SIZE + pageOff, out.subarray(pos, pos + chunk));
      } catch (e) {
        return reject(
          "EINVAL",
          "gpa-direct-access-refused",
          `GPA-direct read at PFN ${pfn} refused: ${String(e)}`,
        );
      }
      pos += chunk;
      left -= chunk;
      pageOff = 0;
      i = j;
    }
  }
  return result ?? ok(out);
}

/** The results of walks of up to 64 messages, made once (a walk's result is read, never kept). */
const OK_COUNTS: readonly { readonly ok: true; readonly value: number }[] = Array.from(
  { length: 65 },
  (_, n) => Object.freeze(ok(n)),
);

/** Message views a walk keeps (one per position of a batch). */
const MAX_KEPT_VIEWS = 64;

function okCount(n: number): { readonly ok: true; readonly value: number } {
  return n < OK_COUNTS.length ? OK_COUNTS[n]! : ok(n);
}

export type RndisWalkRejectReason = "rndis-trailing-bytes" | "rndis-msg-len-invalid";

/**
 * Split gathered bytes into RNDIS messages (several when the guest batched packets into one send
 * section: each msg_len already includes its alignment padding). `visit` gets a view of each message
 * inside the private buffer and returns false to stop the walk. `views`, when given, keeps the view of
 * the n-th message between walks and reuses it when the next walk finds the same one there (a batch of
 * equal packets in a reused gather buffer needs no new views).
 */
export function walkRndisMessages(
  bytes: Uint8Array,
  visit: (msgType: number, msg: Uint8Array) => boolean,
  views?: Uint8Array[],
): NetvscResult<number, RndisWalkRejectReason> {
  let pos = 0;
  let n = 0;
  // where bytes sit in their buffer, read once a walk when a kept view is checked (getters, not fields)
  let base = -1;
  let buffer: ArrayBufferLike | undefined;
  while (pos < bytes.length) {
    const remaining = bytes.length - pos;
    if (remaining < 8) {
      return reject("EINVAL", "rndis-trailing-bytes", `${remaining} bytes after the last RNDIS message`);
    }
    const msgType = readU32(bytes, pos);
    const msgLen = readU32(bytes, pos + 4);
    if (msgLen < 8 || msgLen > remaining) {
      return reject("EINVAL", "rndis-msg-len-invalid", `msg_len ${msgLen} with ${remaining} bytes left`);
    }
    n++;
    // One message filling the buffer (the usual SEND_RNDIS_PKT) is handed the buffer itself.
    let msg: Uint8Array;
    if (pos === 0 && msgLen === bytes.length) msg = bytes;
    else if (views === undefined) msg = bytes.subarray(pos, pos + msgLen);
    else {
      const v = views[n - 1];
      if (v !== undefined && base < 0) {
        base = bytes.byteOffset;
        buffer = bytes.buffer;
      }
      if (v !== undefined && v.length === msgLen && v.byteOffset === base + pos && v.buffer === buffer) {
        msg = v;
      } else {
        msg = bytes.subarray(pos, pos + msgLen);
        if (n - 1 < MAX_KEPT_VIEWS) views[n - 1] = msg;
      }
    }
    if (!visit(msgType, msg)) return okCount(n);
    pos += msgLen;
  }
  return okCount(n);
}
