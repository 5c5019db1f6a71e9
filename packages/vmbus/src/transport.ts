// The narrow interface channel and GPADL code get from the connection (vmbus_connection's message
// path: vmbus_post_msg, chn_msg_list, wait_for_completion, next_gpadl_handle). The connection builds
// it; nothing outside VMBus sees these operations.

import type { HypervLayer } from "@ivm/hypercall";
import type { GuestMemory } from "@ivm/memory";
import type { Result } from "./errors.js";
import type { KernelContext } from "./profile.js";
import type { VmbusTraceEvent } from "./trace.js";
import type { ChannelMessage } from "./wire/channel-message.js";

/** An entry of vmbus_connection.chn_msg_list: a request waiting for its reply. */
export interface PendingRequest {
  readonly msgtype: number;
  /** msginfo->waiting_channel: a rescind of this channel wakes the request without a reply. */
  readonly channel: { readonly relid: number } | undefined;
  readonly childRelid: number;
  readonly gpadl: number;
  readonly openId: number;
  response: ChannelMessage | undefined;
  done: boolean;
}

export interface ChannelTransport {
  readonly memory: GuestMemory;
  readonly hyperv: HypervLayer;
  /** The booted kernel's VMBus behaviours and the findings log, shared by every channel. */
  readonly kernel: KernelContext;
  /** The negotiated VMBus protocol version. */
  readonly version: () => number;
  /** vmbus_post_msg. */
  postMessage(bytes: Uint8Array): Result<void>;
  /** Adds a request to chn_msg_list (before posting, as the kernel does). */
  addPending(p: {
    readonly msgtype: number;
    readonly channel: { readonly relid: number } | undefined;
    readonly gpadl?: number;
    readonly openId?: number;
  }): PendingRequest;
  removePending(req: PendingRequest): void;
  /** wait_for_completion(&msginfo->waitevent), bounded by the scheduler. */
  waitFor(req: PendingRequest, what: string): Result<number>;
  /** atomic_inc_return(&next_gpadl_handle) − 1: handed out even when establishment then fails. */
  allocGpadlHandle(): number;
  /** vmbus_teardown_gpadl swallowed a post error (counted on the connection). */
  countTeardownPostErrorSwallowed(): void;
  /** vmbus_set_event: signal the host for this relid. */
  signalHost(relid: number): void;
  /** Someone listens to the trace (build events only then). */
  tracing(): boolean;
  trace(event: VmbusTraceEvent): void;
  /** vmbus_release_relid. */
  releaseRelid(channel: { readonly relid: number }): Result<void>;
}
