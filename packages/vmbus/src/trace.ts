// VMBus's tracepoints (drivers/hv/hv_trace.h: trace_vmbus_establish_gpadl_header/_body, trace_vmbus_open,
// trace_vmbus_teardown_gpadl, trace_vmbus_close_internal, trace_vmbus_on_message): typed events a
// subscriber gets from the source, so nobody re-decodes channel-message bytes to learn what happened.
// Built only while someone listens (VmbusConnection.onTrace): free otherwise.

export type MessageDirection = "guest-to-host" | "host-to-guest";

export type VmbusTraceEvent =
  /** Every channel message posted (guest-to-host) or received (host-to-guest), named. */
  | {
      readonly kind: "message";
      readonly direction: MessageDirection;
      readonly type: number;
      readonly name: string;
      readonly bytes: Uint8Array;
    }
  /** trace_vmbus_establish_gpadl_header: the header was posted. */
  | {
      readonly kind: "establish-gpadl-header";
      readonly relid: number;
      readonly handle: number;
      /** range_buflen's PFNs for the whole GPADL. */
      readonly totalPfns: number;
      /** The PFNs carried by this message (the first ones of the buffer), a view. */
      readonly pfns: Float64Array;
      readonly bytes: Uint8Array;
    }
  /** trace_vmbus_establish_gpadl_body: one body message was posted. */
  | {
      readonly kind: "establish-gpadl-body";
      readonly relid: number;
      readonly handle: number;
      /** Index in the GPADL's PFN list of this message's first PFN. */
      readonly firstPfnIndex: number;
      readonly pfns: Float64Array;
      readonly bytes: Uint8Array;
    }
  /** trace_vmbus_open: OPENCHANNEL was posted. */
  | {
      readonly kind: "open";
      readonly relid: number;
      readonly openId: number;
      readonly ringGpadlHandle: number;
      readonly bytes: Uint8Array;
    }
  /** trace_vmbus_teardown_gpadl: GPADL_TEARDOWN was posted. */
  | {
      readonly kind: "teardown-gpadl";
      readonly relid: number;
      readonly handle: number;
      readonly bytes: Uint8Array;
    }
  /** trace_vmbus_close_internal: CLOSECHANNEL was posted. */
  | { readonly kind: "close"; readonly relid: number; readonly bytes: Uint8Array };

export type VmbusTraceKind = VmbusTraceEvent["kind"];

/** Runs of consecutive PFNs, as [first, count] pairs: what a viewer shows for a GPADL message. */
export function pfnRuns(pfns: ArrayLike<number>): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < pfns.length; i++) {
    const pfn = pfns[i]!;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === pfn) last[1]++;
    else runs.push([pfn, 1]);
  }
  return runs;
}
