// netvsc_init_buf (the IVM form of 846da38de0e8, v5.17, with the 2020-21 validation and the 2024
// "Don't free decrypted memory" rule), its cleanup helpers netvsc_revoke_{recv,send}_buf and
// netvsc_teardown_{recv,send}_gpadl, and the buffer half of free_netvsc_device.
//
// Every buffer goes through the injected strategy in the contract's order: allocate, GPADL (VMBus makes
// the pages host-visible), map (the address the guest uses), ... unmap, GPADL teardown (re-encrypts),
// then free, or leak when the GPADL says the pages may still be shared.

import {
  NETVSC_RECEIVE_BUFFER_ID,
  NETVSC_SEND_BUFFER_ID,
  type NetvscResult,
  NVSP_STATUS,
  type NvspMessage,
  ok,
  recvBufferBytes,
  sendBufferBytes,
  VRSS_CHANNEL_MAX,
  validateRecvBufComplete,
  validateSendBufComplete,
} from "@ivm/netvsc-protocol";
import { VMBUS_VERSION } from "@ivm/vmbus";
import { fromVmbus, nvspRequest, sendNvspOneWay } from "./control.js";
import type { NetvscBuffer, NetvscDev } from "./nvdev.js";
import type { NetvscBufferPurpose } from "./reasons.js";
import { reject } from "./reasons.js";
import { RecvCompRing } from "./recv-comp-ring.js";
import { SendSectionMap } from "./send-buffer.js";

/** The purposes netvsc asks its strategy for, which the strategy uses as the buffers' owner tags. */
export const NETVSC_BUFFER_TAGS = { rx: "netvsc-rx", tx: "netvsc-tx" } as const;
export const RX_PRIVATE_TAG = "netvsc-rx-private";
export const SECTION_MAP_TAG = "netvsc-send-section-map";

type BufComplete = Extract<
  NvspMessage,
  { readonly kind: "send-recv-buf-complete" | "send-send-buf-complete" }
>;

/**
 * allocate → establish the GPADL → map (→ rebase when map says the GPADL's mapping moved) → announce the
 * GPADL to the host and wait for its answer. The buffer is recorded in `slot` before anything can
 * fail, so the cleanup paths see every step that happened.
 */
function shareBuffer<K extends BufComplete["kind"]>(
  nv: NetvscDev,
  bytes: number,
  purpose: NetvscBufferPurpose,
  slot: (b: NetvscBuffer) => void,
  announce: (gpadlHandle: number) => NvspMessage,
  replyKind: K,
): NetvscResult<Extract<BufComplete, { readonly kind: K }>> {
  const { strategy, channel } = nv.env;
  // A zero-size buffer is what ethtool -L / -G carry over from a host whose section size exceeded the
  // buffer (send_section_cnt = buf_size / section_size = 0, which netvsc_init_buf accepts). The kernel's
  // allocators return NULL for size 0 (__vmalloc_node_range fails `!size`), so the attach fails with
  // -ENOMEM; the strategy contract refuses 0 as a caller bug instead, so the driver does not ask.
  const buf = bytes > 0 ? strategy.allocate(bytes, purpose) : null;
  if (buf === null) return reject("ENOMEM", `${purpose}-alloc-failed`, `unable to allocate ${bytes} bytes`);
  const b: NetvscBuffer = { buf, va: null, gpadl: undefined };
  slot(b);
  const g = channel.establishGpadl(buf.gpadlVa, buf.bytes, { preShared: buf.preShared });
  b.gpadl = g.ok ? g.value : g.gpadl;
  if (!g.ok) return fromVmbus(g.error, `${purpose}-gpadl-failed`);
  const mapped = strategy.map(buf);
  if (mapped === null)
    return reject("ENOMEM", `${purpose}-map-failed`, "the strategy could not map the buffer");
  b.va = mapped.va;
  // Strategy (4) swaps its transient mapping for another mapping of the same pages during map.
  if (mapped.gpadlVa !== undefined) {
    const rb = channel.rebaseGpadl(b.gpadl, mapped.gpadlVa);
    if (!rb.ok) return fromVmbus(rb.error, `${purpose}-rebase-failed`);
  }
  const reply = nvspRequest(nv.env, announce(b.gpadl.handle), `nvsp-${replyKind}`);
  if (!reply.ok) return reply;
  const m = reply.value;
  if (m.kind !== replyKind)
    return reject("EINVAL", "nvsp-unexpected-reply", `${m.kind} answered, not ${replyKind}`);
  return ok(m as Extract<BufComplete, { readonly kind: K }>);
}

function initRecvBuf(nv: NetvscDev): NetvscResult<void> {
  const { env, info } = nv;
  const bytes = recvBufferBytes(info.rxSections, info.recvSectionSize, nv.nvspVersion);
  nv.recvBufSize = bytes;
  const reply = shareBuffer(
    nv,
    bytes,
    NETVSC_BUFFER_TAGS.rx,
    (x) => {
      nv.recv = x;
    },
    (gpadlHandle) => ({ kind: "send-recv-buf", gpadlHandle, id: NETVSC_RECEIVE_BUFFER_ID }),
    "send-recv-buf-complete",
  );
  if (!reply.ok) return reply;
  const m = reply.value;
  const layout = validateRecvBufComplete(m, bytes);
  if (!layout.ok) {
    // The kernel stores the host's section size and count before the two size checks, so a revoke
    // is owed for those rejections (and not for a bad status, count or offset).
    if (m.status === NVSP_STATUS.SUCCESS && m.numSections === 1 && m.section.offset === 0) {
      nv.recvSectionSize = m.section.subAllocSize;
      nv.recvSectionCnt = m.section.numSubAllocs;
    }
    env.stats.errors.count(layout.error.reason);
    return layout;
  }
  nv.recvSectionSize = layout.value.sectionSize;
  nv.recvSectionCnt = layout.value.sectionCount;
  // The private copies are sized from the host's reply, so they come after it (Parri, Feb 2021).
  for (let i = 0; i < VRSS_CHANNEL_MAX; i++) {
    const va = env.memory.kmalloc.kzalloc(nv.recvSectionSize, { tag: RX_PRIVATE_TAG });
    if (va === null) return reject("ENOMEM", "rx-private-alloc-failed", `chan_table[${i}].recv_buf`);
    nv.rxPrivate.push(va);
  }
  nv.rxScratch = new Uint8Array(nv.recvSectionSize);
  const mrc = RecvCompRing.alloc(env.memory, nv.recvSectionCnt);
  if (mrc === null) return reject("ENOMEM", "recv-comp-ring-alloc-failed", "netvsc_alloc_recv_comp_ring");
  nv.mrc = mrc;
  return ok(undefined);
}

function initSendBuf(nv: NetvscDev): NetvscResult<void> {
  const { env, info } = nv;
  const bytes = sendBufferBytes(info.txSections, info.sendSectionSize);
  nv.sendBufSize = bytes;
  const reply = shareBuffer(
    nv,
    bytes,
    NETVSC_BUFFER_TAGS.tx,
    (x) => {
      nv.send = x;
    },
    (gpadlHandle) => ({ kind: "send-send-buf", gpadlHandle, id: NETVSC_SEND_BUFFER_ID }),
    "send-send-buf-complete",
  );
  if (!reply.ok) return reply;
  const layout = validateSendBufComplete(reply.value, bytes);
  if (!layout.ok) {
    env.stats.errors.count(layout.error.reason);
    return layout;
  }
  nv.sendSectionSize = layout.value.sectionSize;
  nv.sendSectionCnt = layout.value.sectionCount;
  const map = new SendSectionMap(nv.sendSectionCnt);
  // kcalloc(0) is ZERO_SIZE_PTR, not NULL: a host section larger than the buffer leaves no sections.
  if (map.mapBytes > 0) {
    const va = env.memory.kmalloc.kzalloc(map.mapBytes, { tag: SECTION_MAP_TAG });
    if (va === null) return reject("ENOMEM", "send-section-map-alloc-failed", "send_section_map");
    nv.sectionMapVa = va;
  }
  nv.sectionMap = map;
  return ok(undefined);
}

/** netvsc_init_buf: on any failure, revoke both, tear both GPADLs down, and return the error. */
export function initBuf(nv: NetvscDev): NetvscResult<void> {
  let r = initRecvBuf(nv);
  if (r.ok) r = initSendBuf(nv);
  if (!r.ok) {
    revokeRecvBuf(nv);
    revokeSendBuf(nv);
    teardownRecvGpadl(nv);
    teardownSendGpadl(nv);
  }
  return r;
}

/** A revoke that could not be posted: the kernel logs and leaves the count set (and the buffer owed). */
function revoke(nv: NetvscDev, kind: "revoke-recv-buf" | "revoke-send-buf", id: number): boolean {
  const sent = sendNvspOneWay(nv.env, { kind, id }, `${kind}-failed`);
  // Nothing can be sent on a rescinded channel; the kernel treats that as done so cleanup proceeds.
  if (sent.ok || nv.env.channel.rescinded) return true;
  nv.env.stats.errors.count(sent.error.reason);
  return false;
}

/** netvsc_revoke_recv_buf: only when a section count was received (a revoke is owed). */
export function revokeRecvBuf(nv: NetvscDev): void {
  if (nv.recvSectionCnt !== 0 && revoke(nv, "revoke-recv-buf", NETVSC_RECEIVE_BUFFER_ID))
    nv.recvSectionCnt = 0;
}

export function revokeSendBuf(nv: NetvscDev): void {
  if (nv.sendSectionCnt !== 0 && revoke(nv, "revoke-send-buf", NETVSC_SEND_BUFFER_ID)) nv.sendSectionCnt = 0;
}

function teardown(
  nv: NetvscDev,
  b: NetvscBuffer | undefined,
  reason: "recv-gpadl-teardown-failed" | "send-gpadl-teardown-failed",
): void {
  if (b?.gpadl === undefined || b.gpadl.handle === 0) return;
  const t = nv.env.channel.teardownGpadl(b.gpadl);
  // On failure the kernel logs and returns; whether the pages leak is the GPADL's decrypted flag.
  if (!t.ok) nv.env.stats.errors.count(reason);
}

export function teardownRecvGpadl(nv: NetvscDev): void {
  teardown(nv, nv.recv, "recv-gpadl-teardown-failed");
}

export function teardownSendGpadl(nv: NetvscDev): void {
  teardown(nv, nv.send, "send-gpadl-teardown-failed");
}

/** netvsc_device_remove tears the GPADLs down after vmbus_close only on hosts from Windows 10 on. */
export function gpadlTeardownAfterClose(nv: NetvscDev): boolean {
  return nv.env.channel.vmbusVersion >= VMBUS_VERSION.WIN10;
}

/** hv_unmap_memory of both buffers (done in netvsc_device_remove / the add error path, not under RCU). */
export function unmapBuffers(nv: NetvscDev): void {
  for (const b of [nv.recv, nv.send]) {
    if (b?.va !== null && b?.va !== undefined) {
      nv.env.strategy.unmap(b.buf);
      b.va = null;
    }
  }
}

/**
 * The findings the netvsc driver reports: the CVE or fixing commit, or — where no kernel fixed it — a
 * short name of what the kernel does.
 */
export const NETVSC_FINDING = {
  /** free_netvsc_device vfree'd a buffer whose GPADL may still be decrypted (before bbf9ac34677b). */
  bufferFreedVisible: "CVE-2024-36911",
  /** rndis_get_ppi re-copied a PPI area the host had changed since the previous lookup's copy. */
  ppiDoubleFetch: "rndis-get-ppi-double-fetch",
  /** rndis_get_ppi met a malformed entry whose `continue` does not advance: the NAPI poll spins. */
  ppiLookupSpins: "rndis-get-ppi-spin",
  /**
   * rndis_set_subchannel's wait for open_chn == num_chn never ends: netvsc_sc_open counted offers above
   * the host's grant before the completion lowered num_chn (no kernel fixes it; the rule since
   * 732e49850c5e).
   */
  subchannelOpenPastGrant: "subchannel-open-past-grant",
} as const;

/**
 * free_netvsc_device: each buffer is freed unless its GPADL may still have it decrypted, in which case
 * it is leaked (CVE-2024-36911); then the private receive copies, the bitmap and the completion ring.
 * Returns how many buffers were leaked.
 *
 * A profile without "Don't free decrypted memory" vfrees such a buffer: that is reported as a finding
 * and, kernel-exact, the strategy frees it as it is (BuddyAllocator.freeingHostVisible: its pages go back
 * to the allocator still host-visible, where a later allocation may hand them out). A hardened profile
 * leaks it through the strategy instead.
 */
export function freeNetvscDevice(nv: NetvscDev): number {
  const { strategy, memory, kernel } = nv.env;
  let leaked = 0;
  for (const b of [nv.recv, nv.send]) {
    if (b === undefined) continue;
    if (b.gpadl?.decrypted === true) {
      if (!kernel.profile.netvsc.keepDecryptedBuffers.value) {
        nv.env.stats.buffersFreedWhileVisible++;
        kernel.report({
          id: NETVSC_FINDING.bufferFreedVisible,
          invariant: "I1",
          what: `vfree of the ${b === nv.recv ? "receive" : "send"} buffer (${b.gpadl.pages} pages) while its GPADL may still be decrypted`,
          where: "free_netvsc_device",
        });
        if (!kernel.profile.hardened) {
          memory.buddy.freeingHostVisible("free_netvsc_device", () => strategy.free(b.buf));
          continue;
        }
      }
      strategy.leak(b.buf);
      leaked++;
    } else {
      strategy.free(b.buf);
    }
  }
  nv.recv = undefined;
  nv.send = undefined;
  for (const va of nv.rxPrivate) memory.kmalloc.kfree(va);
  nv.rxPrivate.length = 0;
  if (nv.sectionMapVa !== null) memory.kmalloc.kfree(nv.sectionMapVa);
  nv.sectionMapVa = null;
  nv.sectionMap = undefined;
  nv.mrc?.free(memory);
  nv.mrc = undefined;
  return leaked;
}
