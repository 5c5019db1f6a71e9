export { type ChannelCost, type NicChannelReport, trackChannels } from "./channels.js";
export {
  FAULT_NAMES,
  type FaultName,
  type FaultReport,
  type FaultSpec,
  isFaultName,
  VM_FAULTS,
} from "./faults.js";
export {
  checkVmInvariants,
  type InvariantBaseline,
  type InvariantId,
  type InvariantViolation,
  type RetiredNicGuards,
} from "./invariants.js";
export {
  addNicMeasured,
  type BufferCost,
  type BufferSummary,
  type DeviceAddCost,
  mappingsOf,
  summarizeBuffer,
  type TimelineEntry,
} from "./measure.js";
export { measuredStrategy, type StrategyCallCost } from "./measured-strategy.js";
export { runTraffic, type TrafficOptions, type TrafficReport } from "./traffic.js";
export {
  DEFAULT_MESSAGE_LOG,
  type DmaOpsInstaller,
  type Nic,
  type NicOptions,
  Vm,
  type VmOptions,
  type VmServices,
  type VmStrategy,
} from "./vm.js";
