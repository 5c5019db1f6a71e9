// @ivm/shared-buffer: the allocation-strategy contract (the seam the seed argues about). It names
// only guest memory, the hypervisor layer and the kernels a strategy was written for; the
// conformance kit is @ivm/strategy-conformance.

export {
  type BufferPurpose,
  type BufferState,
  type MappedBuffer,
  SHARED_BUFFER_CONTRACT_VERSION,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyDescriptor,
  type StrategyFactory,
  type StrategyServices,
} from "./contract.js";
export {
  type BufferFields,
  defineStrategy,
  type StrategyIdentity,
  type StrategyImpl,
  vzallocBuffers,
} from "./define-strategy.js";
export { SharedBufferError } from "./errors.js";
export { writtenFor } from "./kernels.js";
export { leakPagesAt } from "./leak.js";
