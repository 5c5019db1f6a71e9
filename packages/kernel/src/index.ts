export {
  type ConversionErrors,
  type ConversionSequence,
  type Era,
  type HypercallBehaviour,
  hypercallBehaviours,
  type MapMemoryPgprot,
  type RepCountHandling,
} from "./behaviours/hypercall.js";
export { type DefaultChannels, type NetvscBehaviour, netvscBehaviours } from "./behaviours/netvsc.js";
export {
  type IvmPoolBoot,
  type PoolAllocFailure,
  type SlotSearchTermination,
  type SwiotlbBehaviour,
  swiotlbBehaviours,
} from "./behaviours/swiotlb.js";
export {
  type InitVpIndexForm,
  type MonitorPageMapping,
  type VmbusBehaviour,
  vmbusBehaviours,
} from "./behaviours/vmbus.js";
export { type Finding, type FindingCounts, FindingLog, type FindingLogOptions } from "./findings.js";
export { isProfileName, type PerProfile, PROFILE_NAMES, type ProfileName } from "./names.js";
export {
  ERA_PROFILES,
  eraProfile,
  getProfile,
  type KernelProfile,
  profiles,
  UnknownKernelError,
  withHardened,
} from "./profile.js";
export {
  formatKernelRange,
  inKernelRange,
  type KernelLine,
  type KernelRange,
  kernelRangeReason,
  writtenFor,
} from "./range.js";
export { type Sourced, sourced } from "./sourced.js";
export { profileTable } from "./table.js";
