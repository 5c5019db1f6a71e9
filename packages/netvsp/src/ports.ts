// The ports the simulated netvsp takes. They are deliberately small so that the vm package can adapt
// whatever the VMBus host server hands a device on open (a channel's HostRingEndpoint, the GPADL map
// over the host's visibility-gated view of guest memory) without netvsp knowing about either.

import type { Result, RingWriteOk } from "@ivm/vmbus";
import type { HostReadResult } from "@ivm/vmbus/host";

/**
 * The host's end of the channel's rings: what netvsp uses of `HostRingEndpoint` (which satisfies this
 * interface structurally). `send` takes a whole prepared packet, descriptor first, 8-byte aligned; a
 * full inbound ring is an EAGAIN result, never a throw.
 */
export interface NetvspRing {
  /**
   * The next guest packet, as a host-owned copy; "empty" or "corrupt" otherwise. The copy may be reused
   * by the next call (HostRingEndpoint.readPacketTransient): netvsp is done with a packet before then.
   */
  readPacket(): HostReadResult;
  /** Publish the host's read position (frees room in the guest's outbound ring). */
  commitRead(): { readonly signal: boolean };
  send(packet: Uint8Array): Result<RingWriteOk>;
  /**
   * A VM_PKT_COMP completion for `transId` carrying `payload`: the bytes `send(encodeCompletionPacket(
   * transId, payload))` writes, without the packet being built first. Optional: without it netvsp
   * builds the packet and sends it.
   */
  sendCompletion?(transId: bigint, payload: Uint8Array): Result<RingWriteOk>;
}

/**
 * A guest GPADL as the host maps it (OpenVMM's GpadlView): a flat byte range, reached through the
 * host's visibility-gated view. Either access may throw when the pages are not (or no longer)
 * host-visible; netvsp counts that as a refusal and fails the packet.
 */
export interface HostGpadlView {
  readonly size: number;
  read(offset: number, dst: Uint8Array): void;
  write(offset: number, src: Uint8Array): void;
}

/** Map a guest GPADL handle; undefined when the handle is unknown (OpenVMM's UnknownGpadlId). */
export type GpadlLookup = (handle: number) => HostGpadlView | undefined;

/**
 * The host's view of guest memory by guest-physical address, for GPA-direct (page-buffer) packets.
 * `@ivm/hypercall`'s HostView has this shape: it throws before any byte moves when a page is not
 * host-visible or the address is not guest RAM.
 */
export interface HostGuestMemory {
  read(gpa: number, dst: Uint8Array): void;
}

/** Everything netvsp needs from an open channel. */
export interface NetvspPorts {
  readonly ring: NetvspRing;
  readonly gpadl: GpadlLookup;
  /** Absent: every GPA-direct packet is refused (counted), as if no page were host-visible. */
  readonly guestMemory?: HostGuestMemory;
  /** Called when a write or a read commit says the guest must be interrupted. */
  readonly signalGuest?: () => void;
  /**
   * The primary's only: offer `count` sub-channels (indices 1..count) through the VMBus server; returns
   * how many were offered. Absent: the host offers none (the request is completed with 0).
   */
  readonly offerSubChannels?: (count: number) => number;
}
