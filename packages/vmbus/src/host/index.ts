// @ivm/vmbus/host: the host's side of VMBus (the server that answers channel messages, reassembles
// GPADLs and serves the rings through the visibility-gated host view). The guest side (`@ivm/vmbus`)
// never imports this entry; host devices (such as @ivm/netvsp) do.

export {
  bootVmbus,
  type VmbusBootOptions,
  type VmbusBus,
} from "./bus.js";
export type {
  GpadlRejectCounters,
  GpadlRejectReason,
} from "./gpadl-assembler.js";
export type { HostMemoryAccess } from "./host-ring-mem.js";
export {
  type HostPacket,
  type HostReadResult,
  HostRingEndpoint,
} from "./ring-endpoint.js";
export {
  HOST_STATUS_UNSUCCESSFUL,
  HostChannel,
  type HostChannelState,
  type HostDevice,
  type HostDropReason,
  type HostHooks,
  type HostMessageAction,
  type HostOfferInit,
  type HostServerCounters,
  type HostServerOptions,
  HostVmbusServer,
} from "./server.js";
export { offerSubChannel, rescindSubChannels } from "./subchannel.js";
