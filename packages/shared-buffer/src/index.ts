export {
  type BufferPurpose,
  type BufferState,
  SHARED_BUFFER_CONTRACT_VERSION,
  type SharedBuffer,
  type SharedBufferStrategy,
  type StrategyFactory,
  type StrategyServices,
} from "./contract.js";
export { defineStrategy, type StrategyImpl } from "./define-strategy.js";
export { SharedBufferError } from "./errors.js";
export { leakPagesAt } from "./leak.js";
export { vzallocBuffers } from "./vzalloc-buffers.js";
