// @ivm/swiotlb/testing: guests booted with their DMA layer (the way @ivm/vm boots them) and the
// buffers the DMA tests map. For tests of this layer and of the strategies that use DMA.

export { bootIsolatedGuest, bootPlainGuest, kmallocFilled, pattern, type TestGuest } from "./boot.js";
