// @ivm/vmbus/testing: the VMBus layer's test world (a guest and an honest host over one memory, booted
// the way @ivm/vm boots them), a host device that records what it reads, and a NIC connected over it.
// For tests of this layer and of the layers above; nothing in the production entries imports it.

export {
  connectNic,
  ERAS,
  makeWorld,
  RecordingDevice,
  type World,
  type WorldEra,
  type WorldOptions,
} from "./world.js";
