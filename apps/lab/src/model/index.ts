// The lab's model adapter: the UI imports the model only from here. Switching to new events or split
// packages (typed VMBus events, @ivm/netvsc-protocol, @ivm/kernel profiles) changes files in this folder only.
export {
  configFromQuery,
  configToQuery,
  DEFAULT_CONFIG,
  eraOf,
  KERNELS,
  type LabConfig,
  UPTIMES,
} from "./config.js";
export {
  type DecodedEvent,
  type DecodedPart,
  decodeEvent,
  type FieldRow,
  isGpadlMessage,
  type PfnRun,
} from "./decode.js";
export {
  ALLOCATED,
  DIRECT_MAP_SHARED,
  FREE,
  HOST_VISIBLE,
  LEAKED,
  PageDiff,
  PageState,
  pageFlags,
  pageOrder,
  pageOwner,
} from "./page-state.js";
export {
  type LabEvent,
  type LabFinding,
  type MappingRow,
  PHASES,
  type Phase,
  type Recording,
  type RunSummary,
  record,
  STEP_COUNTERS,
} from "./recorder.js";
export { recordOffThread } from "./remote.js";
export { formatBytes, strategyChoices } from "./strategies.js";
