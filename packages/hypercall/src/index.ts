export { HypercallError, type HypercallErrorCode, type HypercallErrorReason } from "./errors.js";
export {
  GuestHypercalls,
  type GuestHypercallsOptions,
  REP_COUNT_FINDING,
  REP_SPIN_LIMIT,
} from "./guest-hypercall.js";
export { HostView } from "./host-view.js";
export {
  decodeControl,
  decodeStatus,
  encodeControl,
  encodeStatus,
  HostVisibility,
  HV_HYP_PAGE_SIZE,
  HV_MAX_MODIFY_GPA_REP_COUNT,
  HV_PARTITION_ID_SELF,
  HVCALL_MODIFY_SPARSE_GPA_PAGE_HOST_VISIBILITY,
  HvStatus,
  type HypercallControl,
  readVisibilityInput,
  type VisibilityInput,
  writeVisibilityInput,
} from "./hv-abi.js";
export { createHyperv, type HypervLayer } from "./hyperv.js";
export { type HypercallEvent, Hypervisor, type HypervisorCounters, HypervisorFaults } from "./hypervisor.js";
export {
  cpuidFor,
  HV_ISOLATION,
  HV_PARAVISOR_PRESENT,
  HvIsolationType,
  HYPERV_CPUID_FEATURES,
  HYPERV_CPUID_ISOLATION_CONFIG,
  type IsolationConfig,
  type IsolationCpuid,
  type IsolationRequest,
  isolationFromCpuid,
} from "./isolation.js";
export { hvMapMemory, hvUnmapMemory, vmapSharedAlias } from "./ivm-map.js";
export { bootPlatform, type Platform, type PlatformOptions } from "./platform.js";
export { type Era, SetMemory, type SetMemoryCounters } from "./set-memory.js";
