/**
 * GPADL establishment and teardown: mirrors __vmbus_establish_gpadl, create_gpadl_header and
 * vmbus_teardown_gpadl (drivers/hv/channel.c) as the booted kernel profile has them
 * (`profile.vmbus`):
 *
 * - the PFN list is built by walking the buffer's virtual address page by page (virt_to_hvpfn);
 * - create_gpadl_header kzallocs one msginfo per message (header, then bodies): a failed allocation
 *   frees what was allocated and is -ENOMEM, before anything is decrypted;
 * - decrypted = true BEFORE set_memory_decrypted, so a failure there leaves it true and the caller
 *   must leak the buffer; the early return leaks the msginfo list until 510164539f16 (a finding);
 * - on any error after decryption the pages are re-encrypted, and only success clears the flag;
 * - teardown calls set_memory_encrypted (every teardown, or only a decrypted one from 0a4534bdf29a)
 *   and sets decrypted = (re-encryption failed): such a buffer must be leaked.
 *
 * The model tracks `decrypted` in every profile, because it must know which pages it may hand out
 * again. Whether the KERNEL knows is `gpadlDecryptedTracking` (CVE-2024-36912): without it, a lost
 * visibility state is reported as a finding, and the callers (vmbus_free_ring, netvsc) free the buffer
 * as that kernel does — see their own behaviours.
 *
 * A pre-shared buffer (already host-visible, the model's stand-in for a caller-decrypted pool) is
 * neither decrypted nor re-encrypted, and its decrypted flag stays false.
 */
import { HypercallError } from "@ivm/hypercall";
import { Gfp, MemoryError, PAGE_SIZE, PrefixViews } from "@ivm/memory";
import type { VmbusChannel } from "./channel.js";
import { err, invariant, ok, type Result, type VmbusErrno, VmbusError } from "./errors.js";
import { VMBUS_FINDING } from "./profile.js";
import type { ChannelTransport } from "./transport.js";
import {
  CHANNEL_MESSAGE_SIZE,
  CHANNELMSG,
  encodeChannelMessage,
  type GpadlCreatedMessage,
  MAX_SIZE_CHANNEL_MESSAGE,
} from "./wire/channel-message.js";
import {
  encodeGpadlBody,
  encodeGpadlHeader,
  GPA_RANGE_HEADER_SIZE,
  GPADL_BODY_MAX_PFNS,
  GPADL_HEADER_MAX_PFNS,
  gpadlMessageCount,
  gpadlPageCount,
} from "./wire/gpadl.js";

/** Owner tag of the msginfo allocations create_gpadl_header makes (one per GPADL message). */
export const MSGINFO_TAG = "vmbus-msginfo";

/**
 * sizeof(struct vmbus_channel_msginfo) in front of each message (computed): msglistentry 16,
 * submsglist 16, waitevent (struct completion) 32, waiting_channel 8, the packed response union 20,
 * msgsize 4 → msg[] at 96.
 */
export const MSGINFO_HEADER_SIZE = 96;

/** The length of GPADL message `m` (0: the header, then the bodies) of an N-page GPADL. */
function gpadlMessageLength(pages: number, m: number): number {
  if (m === 0)
    return (
      CHANNEL_MESSAGE_SIZE.GPADL_HEADER + GPA_RANGE_HEADER_SIZE + 8 * Math.min(pages, GPADL_HEADER_MAX_PFNS)
    );
  const first = GPADL_HEADER_MAX_PFNS + (m - 1) * GPADL_BODY_MAX_PFNS;
  return CHANNEL_MESSAGE_SIZE.GPADL_BODY + 8 * Math.min(GPADL_BODY_MAX_PFNS, pages - first);
}

/** The bytes of every msginfo create_gpadl_header allocates for an N-page GPADL. */
function msginfoBytes(pages: number): number {
  let bytes = 0;
  for (let m = 0; m < gpadlMessageCount(pages); m++)
    bytes += MSGINFO_HEADER_SIZE + gpadlMessageLength(pages, m);
  return bytes;
}

interface Scratch {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** The first `length` bytes of `bytes` (one view per length, made once). */
  readonly prefix: (length: number) => Uint8Array;
}

let scratchBuffer: Scratch | undefined;

/**
 * One message-sized buffer the GPADL messages are encoded into, one after the other: vmbus_post_msg
 * copies each message into the SynIC (hv_post_message), so nothing keeps a reference to it.
 */
function scratch(): Scratch {
  if (scratchBuffer === undefined) {
    const bytes = new Uint8Array(MAX_SIZE_CHANNEL_MESSAGE);
    const prefixes = new PrefixViews(bytes);
    scratchBuffer = {
      bytes,
      view: new DataView(bytes.buffer),
      prefix: (length) => prefixes.of(length),
    };
  }
  return scratchBuffer;
}

/** enum hv_gpadl_type: a ring's pagecount subtracts 2·(PAGE_SIZE − 4096), which is 0 on x86. */
export type GpadlType = "buffer" | "ring";

/** struct vmbus_gpadl as the caller sees it. VMBus owns the fields; they change only through this module. */
export interface Gpadl {
  /** gpadl_handle; 0 before establishment succeeded and after teardown completed. */
  readonly handle: number;
  /** Bytes (a multiple of 4096). */
  readonly size: number;
  /** The virtual address the GPADL was built over (or rebased to); teardown re-encrypts through it. */
  readonly buffer: number;
  /** The pages may be host-visible: the buffer must not be freed (leak it instead). */
  readonly decrypted: boolean;
  readonly type: GpadlType;
  readonly pages: number;
  readonly childRelid: number;
}

interface GpadlRecord {
  handle: number;
  readonly preShared: boolean;
  readonly size: number;
  buffer: number;
  decrypted: boolean;
  readonly type: GpadlType;
  readonly pages: number;
  readonly childRelid: number;
  /** The private-alias PFNs the host was given (private metadata, for rebase checks). */
  readonly pfns: Float64Array;
}

const records = new WeakSet<object>();

function recordOf(gpadl: Gpadl): GpadlRecord {
  invariant(records.has(gpadl), "not a GPADL this VMBus layer established");
  return gpadl as GpadlRecord;
}

/** The PFNs a GPADL was built from (a copy), in buffer order. */
export function gpadlPfns(gpadl: Gpadl): Float64Array {
  return recordOf(gpadl).pfns.slice();
}

export type GpadlEstablishResult =
  | { readonly ok: true; readonly value: Gpadl }
  | {
      readonly ok: false;
      readonly error: VmbusError;
      /** The struct as the kernel leaves it: handle 0, decrypted possibly true. */
      readonly gpadl: Gpadl;
      /** = gpadl.decrypted: the buffer's visibility is unknown; never free it. */
      readonly mustLeak: boolean;
    };

export type GpadlTeardownResult =
  | { readonly ok: true; readonly mustLeak: false }
  | { readonly ok: false; readonly error: VmbusError; readonly mustLeak: boolean };

export interface EstablishGpadlOptions {
  readonly type?: GpadlType;
  /** The pages are host-visible already (a pre-shared pool): skip set_memory_decrypted/encrypted. */
  readonly preShared?: boolean;
}

function fromHypercall(e: unknown): VmbusError {
  if (e instanceof HypercallError) {
    const known: readonly VmbusErrno[] = ["EINVAL", "EFAULT", "EIO", "ENOMEM"];
    const code = (known as readonly string[]).includes(e.code) ? (e.code as VmbusErrno) : "EIO";
    return new VmbusError(code, `set-memory:${e.reason}`, e.message, { cause: e });
  }
  throw e;
}

/** __vmbus_establish_gpadl over `size` bytes at `va` for `channel`. */
export function establishGpadl(
  conn: ChannelTransport,
  channel: VmbusChannel,
  va: number,
  size: number,
  options: EstablishGpadlOptions = {},
): GpadlEstablishResult {
  const handle = conn.allocGpadlHandle();
  invariant(
    Number.isInteger(size) && size > 0 && size % PAGE_SIZE === 0 && size <= 0xffff_f000,
    `GPADL size ${size} must be a positive multiple of 4096 (u32)`,
  );
  const pages = size / PAGE_SIZE;
  // create_gpadl_header: virt_to_hvpfn per page (a page-table walk for vmalloc addresses), read with
  // one walk per PTE table and counted as the per-page walks.
  const pfns = new Float64Array(pages);
  conn.memory.virtToPfns(va, pages, pfns);
  gpadlPageCount(size, pfns);

  const rec: GpadlRecord = {
    handle: 0,
    preShared: options.preShared === true,
    size,
    buffer: va,
    decrypted: options.preShared !== true,
    type: options.type ?? "buffer",
    pages,
    childRelid: channel.relid,
    pfns,
  };
  records.add(rec);
  const fail = (error: VmbusError): GpadlEstablishResult => ({
    ok: false,
    error,
    gpadl: rec,
    mustLeak: rec.decrypted,
  });
  const kernel = conn.kernel;
  const behaviour = kernel.profile.vmbus;

  // create_gpadl_header: one kzalloc per message (header, then bodies); -ENOMEM frees the ones
  // already taken. The messages themselves are encoded one at a time into `scratch` when posted.
  const messages = gpadlMessageCount(pages);
  const msginfo: number[] = [];
  for (let m = 0; m < messages; m++) {
    const at = conn.memory.kmalloc.kmalloc(MSGINFO_HEADER_SIZE + gpadlMessageLength(pages, m), {
      tag: MSGINFO_TAG,
      gfp: Gfp.Zero,
    });
    if (at === null) {
      for (const p of msginfo) conn.memory.kmalloc.kfree(p);
      rec.decrypted = false;
      return fail(
        new VmbusError(
          "ENOMEM",
          "msginfo",
          `no memory for GPADL message ${msginfo.length + 1} of ${messages}`,
        ),
      );
    }
    msginfo.push(at);
  }
  const freeMsginfo = (): void => {
    for (const p of msginfo) conn.memory.kmalloc.kfree(p);
  };

  if (rec.decrypted) {
    try {
      conn.hyperv.setMemory.decrypted(va, pages);
    } catch (e) {
      // "Failed to set host visibility for new GPADL": returned with decrypted still true.
      const error = fromHypercall(e);
      if (behaviour.msginfoFreedOnDecryptFailure.value) freeMsginfo();
      else {
        kernel.report({
          id: VMBUS_FINDING.msginfoLeaked,
          invariant: "kmalloc-leak",
          what: `set_memory_decrypted failed (${error.code}); the early return leaks ${messages} msginfo allocations (${msginfoBytes(pages)} bytes)`,
          where: `__vmbus_establish_gpadl, GPADL 0x${handle.toString(16)} of channel ${channel.relid}`,
        });
      }
      lostState(conn, rec, "__vmbus_establish_gpadl: set_memory_decrypted failed");
      return fail(error);
    }
  }

  const req = conn.addPending({ msgtype: CHANNELMSG.GPADL_HEADER, channel, gpadl: handle });
  let error: VmbusError | undefined;
  if (channel.rescinded) {
    error = new VmbusError("ENODEV", "rescinded", "channel rescinded before the GPADL was posted");
  } else {
    const out = scratch();
    let posted = conn.postMessage(out.prefix(encodeGpadlHeader(out.view, channel.relid, handle, size, pfns)));
    const inHeader = Math.min(pages, GPADL_HEADER_MAX_PFNS);
    if (posted.ok && conn.tracing()) {
      const relid = channel.relid;
      conn.trace({
        kind: "establish-gpadl-header",
        relid,
        handle,
        totalPfns: pages,
        pfns: pfns.subarray(0, inHeader),
        bytes: out.bytes.slice(0, gpadlMessageLength(pages, 0)),
      });
    }
    for (let first = inHeader; posted.ok && first < pages; first += GPADL_BODY_MAX_PFNS) {
      const length = encodeGpadlBody(out.view, handle, pfns, first);
      posted = conn.postMessage(out.prefix(length));
      if (posted.ok && conn.tracing()) {
        const n = Math.min(GPADL_BODY_MAX_PFNS, pages - first);
        conn.trace({
          kind: "establish-gpadl-body",
          relid: channel.relid,
          handle,
          firstPfnIndex: first,
          pfns: pfns.subarray(first, first + n),
          bytes: out.bytes.slice(0, length),
        });
      }
    }
    if (!posted.ok) error = posted.error;
  }
  if (error === undefined) {
    const w = conn.waitFor(req, "GPADL_CREATED");
    const resp = req.response as GpadlCreatedMessage | undefined;
    if (!w.ok) error = w.error;
    else if (resp !== undefined && resp.creationStatus !== 0) {
      error = new VmbusError(
        "EDQUOT",
        "gpadl-creation-failed",
        `Failed to establish GPADL: status 0x${resp.creationStatus.toString(16)}`,
      );
    } else if (channel.rescinded) {
      error = new VmbusError("ENODEV", "rescinded", "channel rescinded while waiting for GPADL_CREATED");
    }
  }
  conn.removePending(req);
  freeMsginfo();

  if (error === undefined) {
    rec.handle = handle;
    return { ok: true, value: rec };
  }
  if (rec.decrypted) {
    try {
      conn.hyperv.setMemory.encrypted(va, pages);
      rec.decrypted = false;
    } catch (e) {
      fromHypercall(e); // decrypted stays true: the memory is leaked, not freed
      lostState(conn, rec, "__vmbus_establish_gpadl: set_memory_encrypted failed after an error");
    }
  }
  return fail(error);
}

/**
 * A kernel without vmbus_gpadl.decrypted cannot tell its caller that the buffer may be host-visible:
 * report it (CVE-2024-36912). With the flag the caller learns it through `decrypted`.
 */
function lostState(conn: ChannelTransport, rec: GpadlRecord, where: string): void {
  if (conn.kernel.profile.vmbus.gpadlDecryptedTracking.value) return;
  conn.kernel.report({
    id: VMBUS_FINDING.gpadlStateLost,
    invariant: "I4",
    what: `the visibility of ${rec.pages} pages is unknown and vmbus_gpadl has no decrypted flag: the caller frees them`,
    where: `${where} (${rec.type} GPADL of channel ${rec.childRelid})`,
  });
}

/**
 * vmbus_teardown_gpadl: TEARDOWN, wait for TORNDOWN matched on the handle (a rescinded channel counts as
 * success), then re-encrypt if decrypted and set decrypted = (that failed).
 *
 * Like the kernel, the returned error is the re-encryption's: a failed post is overwritten by it (and
 * counted in teardownPostErrorsSwallowed). The model adds one case the kernel cannot have: a wait that
 * ran out (ETIMEDOUT) is reported after the re-encryption was attempted.
 */
export function teardownGpadl(
  conn: ChannelTransport,
  channel: VmbusChannel,
  gpadl: Gpadl,
): GpadlTeardownResult {
  const rec = recordOf(gpadl);
  if (rec.handle === 0) {
    return {
      ok: false,
      error: new VmbusError("EINVAL", "no-gpadl", "teardown of a GPADL that is not established"),
      mustLeak: rec.decrypted,
    };
  }
  const req = conn.addPending({ msgtype: CHANNELMSG.GPADL_TEARDOWN, channel, gpadl: rec.handle });
  let postError: VmbusError | undefined;
  let timeout: VmbusError | undefined;
  if (!channel.rescinded) {
    const bytes = encodeChannelMessage({
      kind: "gpadl-teardown",
      childRelid: channel.relid,
      gpadl: rec.handle,
    });
    const posted = conn.postMessage(bytes);
    if (posted.ok && conn.tracing())
      conn.trace({ kind: "teardown-gpadl", relid: channel.relid, handle: rec.handle, bytes });
    if (!posted.ok) postError = posted.error;
    else {
      const w = conn.waitFor(req, "GPADL_TORNDOWN");
      if (w.ok) rec.handle = 0;
      else timeout = w.error;
    }
  }
  // "If the channel has been rescinded, … set the error code to zero so we don't leak memory."
  if (channel.rescinded) {
    postError = undefined;
    timeout = undefined;
  }
  conn.removePending(req);

  // set_memory_encrypted for every teardown (5.16 on), or only for a decrypted buffer (0a4534bdf29a).
  const reencrypt =
    !rec.preShared && (rec.decrypted || conn.kernel.profile.vmbus.teardownReencrypt.value === "always");
  if (reencrypt) {
    try {
      conn.hyperv.setMemory.encrypted(rec.buffer, rec.pages);
      rec.decrypted = false;
    } catch (e) {
      // "Fail to set mem host visibility in GPADL teardown": decrypted stays true.
      rec.decrypted = true;
      lostState(conn, rec, "vmbus_teardown_gpadl: set_memory_encrypted failed");
      return { ok: false, error: fromHypercall(e), mustLeak: true };
    }
  }
  if (postError !== undefined) conn.countTeardownPostErrorSwallowed();
  if (timeout !== undefined) return { ok: false, error: timeout, mustLeak: rec.decrypted };
  return { ok: true, mustLeak: false };
}

/**
 * Points the GPADL at another mapping of the SAME pages (a strategy that swaps its transient mapping
 * for a vmap_pfn alias). Every page of `newVa` must map the PFN the host was given; otherwise nothing
 * changes and the result is EINVAL. Teardown then re-encrypts through `newVa`.
 */
export function rebaseGpadl(conn: ChannelTransport, gpadl: Gpadl, newVa: number): Result<void> {
  const rec = recordOf(gpadl);
  for (let i = 0; i < rec.pages; i++) {
    let pfn: number;
    try {
      pfn = conn.memory.virtToPfn(newVa + i * PAGE_SIZE);
    } catch (e) {
      if (!(e instanceof MemoryError)) throw e;
      return err("EINVAL", "rebase-unmapped", `page ${i} of 0x${newVa.toString(16)} is not mapped`);
    }
    if (pfn !== rec.pfns[i]) {
      return err(
        "EINVAL",
        "rebase-pfn-mismatch",
        `page ${i} maps pfn 0x${pfn.toString(16)}, the GPADL holds 0x${rec.pfns[i]!.toString(16)}`,
      );
    }
  }
  rec.buffer = newVa;
  return ok(undefined);
}
