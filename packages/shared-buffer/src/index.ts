// @ivm/shared-buffer: the allocation-strategy contract (the seam the seed argues about). It names
// only guest memory and the hypervisor layer (a descriptor's kernel range is declared by shape;
// @ivm/kernel's writtenFor builds it); the conformance kit is @ivm/strategy-conformance.

export {
  type BufferPurpose,
  type BufferState,
  type MappedBuffer,
  SHARED_BUFFER_CONTRACT_VERSION,
  SHARED_POOL_TAG,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyDescriptor,
  type StrategyFactory,
  type StrategyKernel,
  type StrategyKernelRange,
  type StrategyServices,
} from "./contract.js";
export {
  type BufferFields,
  defineStrategy,
  type StrategyIdentity,
  type StrategyImpl,
  vzallocBuffers,
} from "./define-strategy.js";
export { SharedBufferError, type SharedBufferErrorReason } from "./errors.js";
export { leakPagesAt } from "./leak.js";
